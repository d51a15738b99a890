"""Question → retrieve → prompt → LLM → validate citations → check support → record.

Abstention happens before any generation when the evidence is weak (the gates
of rag/abstain.py, calibrated on bench/answers_dev.jsonl), or when the LLM
writes the sentinel sentence. A generated answer whose sentences are
mostly not supported by the abstracts they cite is replaced by the extractive
answer, with a note saying so.

`Answerer.stream` yields text as it is generated and finally the validated
`AnswerResult`; the CLI, the UI and the eval harness all go through it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from functools import cached_property

from pydantic import BaseModel, Field

from rag.abstain import judge_evidence, judge_retrieval, measure_evidence, retrieval_evidence
from rag.citations import validate_citations
from rag.context import build_prompt
from rag.filters import RetrievalFilters
from rag.extractive import ScoredSentence, citable_sources, extractive_answer, score_sentences
from rag.index import PaperIndex
from rag.llm import ChatModel, PartialAnswer, connect_chat_model, resolve_mode
from rag.prompts import SENTINEL, load_prompt
from rag.retrieve import Source, retrieve
from rag.settings import Settings
from rag.support import CachedEmbedder, support_sentences

EMPTY_INDEX_MESSAGE = "The index is empty: ingest some papers first (rag ingest PATH)."
NO_CITABLE_SENTENCE = (
    "the papers retrieval ranks at the top have no sentence close to the question, and the "
    "closer ones are in papers it ranks far lower: the sources do not clearly answer it."
)


class Citation(BaseModel):
    n: int
    paper_id: str
    title: str


class SourceRecord(BaseModel):
    n: int
    paper_id: str
    title: str
    score: float
    url: str
    year: int | None = None
    authors: str = ""
    abstract: str = ""
    cited: bool = False


class SentenceRecord(BaseModel):
    """One answer sentence and whether the abstract it cites backs it (see rag/support.py)."""

    text: str
    citations: list[int]
    support: float | None
    evidence: str
    evidence_source: int | None
    supported: bool


class AnswerResult(BaseModel):
    """The JSON contract of `rag ask --json` (and one line of `--out` in batch mode)."""

    question: str
    answer: str
    citations: list[Citation]
    sources: list[SourceRecord]
    abstained: bool
    llm: str
    timings_ms: dict[str, float]
    invalid_citations: int = 0  # markers the generator wrote outside the sources (removed)
    notes: list[str] = Field(default_factory=list)
    sentences: list[SentenceRecord] = Field(default_factory=list)  # empty when abstained
    query: str = ""  # what was searched: the question, or its standalone form in a chat
    complete: bool = True  # False: the LLM's stream stopped early; `answer` is what arrived
    prompt: list[dict[str, str]] | None = Field(default=None, exclude=True)


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round((now - self._start) * 1000, 1)
        self._start = now


def quote_sources(
    scored: Sequence[ScoredSentence], sources: Sequence[Source], min_score: float,
    settings: Settings,
) -> tuple[str, bool]:  # fmt: skip
    """The extractive answer: the best sentences of the papers retrieval ranks near the
    top, (text with [n] markers, abstained). Shared with the bench's calibration."""
    citable = citable_sources(sources, settings.cite_min_score_share)
    return extractive_answer(
        [item for item in scored if item.source_number in citable],
        settings.extractive_sentences, min_score, settings.extractive_margin,
    )  # fmt: skip


class Answerer:
    """Answers questions over one index with one settings object."""

    def __init__(self, index: PaperIndex, settings: Settings):
        self.index = index
        self.settings = settings
        self.mode = resolve_mode(settings)

    @cached_property
    def chat_model(self) -> ChatModel:
        return connect_chat_model(self.settings, self.mode)

    @property
    def context_window(self) -> int:
        s = self.settings
        return s.local_context if self.mode == "local" else s.openai_context_window

    def ask(
        self, question: str, history: Sequence[tuple[str, str]] | None = None,
        filters: RetrievalFilters | None = None,
    ) -> AnswerResult:  # fmt: skip
        result = None
        for item in self.stream(question, history, filters):
            if isinstance(item, AnswerResult):
                result = item
        assert result is not None
        return result

    def stream(
        self, question: str, history: Sequence[tuple[str, str]] | None = None,
        filters: RetrievalFilters | None = None,
    ) -> Iterator[str | AnswerResult]:  # fmt: skip
        """Yield answer text deltas, then the validated AnswerResult (always last).

        `history` is the earlier (user, assistant) turns of a chat; `filters`
        restrict which papers may be retrieved.
        """
        timer = _Timer()
        embed = CachedEmbedder(self.index.embedder.get_text_embedding_batch)
        query = self.standalone_query(question, history or [])
        timer.lap("condense")
        sources = retrieve(self.index, query, self.settings.top_k, filters)
        timer.lap("retrieve")
        if not sources:
            message = EMPTY_INDEX_MESSAGE if self.index.paper_count() == 0 else SENTINEL
            yield message
            yield self._result(question, query, message, [], True, self.mode, timer, embed)
            return
        # the cheap retrieval checks first: an off-topic question costs no sentence scoring
        evidence = retrieval_evidence(query, sources)
        weakness, sentence_floor = judge_retrieval(evidence, self.settings), 0.0
        scored: list[ScoredSentence] = []
        if not weakness:
            query_vector = self.index.embedder.get_query_embedding(query)
            scored = score_sentences(query_vector, sources, embed)
            measure_evidence(
                evidence, query, query_vector, sources, scored, self.index.lexical.knows, embed,
                title_below=self.settings.extractive_min_score,
            )  # fmt: skip
            weakness, sentence_floor = judge_evidence(evidence, self.settings)
        timer.lap("evidence")
        if weakness:
            yield SENTINEL
            result = self._result(question, query, SENTINEL, sources, True, self.mode, timer, embed)
            result.notes.append(weakness)
            yield result
            return
        if self.mode == "extractive":
            text, abstained = quote_sources(scored, sources, sentence_floor, self.settings)
            timer.lap("generate")
            yield text
            result = self._result(
                question, query, text, sources, abstained, "extractive", timer, embed
            )
            result.notes.extend([NO_CITABLE_SENTENCE] if abstained else [])
            yield result
            return
        built = build_prompt(
            query, sources,
            load_prompt(self.settings.prompts_dir, self.settings.answer_prompt),
            load_prompt(self.settings.prompts_dir, "system"),
            self.context_window, self.settings.max_answer_tokens,
        )  # fmt: skip
        timer.lap("build_prompt")
        model = self.chat_model
        parts: list[str] = []
        try:
            for delta in model.stream(built.messages):
                parts.append(delta)
                yield delta
        except PartialAnswer as cut:  # shown as it came, marked incomplete, never passed off
            timer.lap("generate")
            result = self._result(question, query, "".join(parts).strip(), built.sources, False,
                                  model.label, timer, embed, built)  # fmt: skip
            result.complete = False
            result.notes.append(str(cut))
            yield result
            return
        timer.lap("generate")
        raw = "".join(parts).strip()
        if SENTINEL.lower().rstrip(".") in raw.lower():
            yield self._result(
                question, query, SENTINEL, built.sources, True, model.label, timer, embed, built
            )
            return
        result = self._result(
            question, query, raw, built.sources, False, model.label, timer, embed, built
        )
        supported = sum(sentence.supported for sentence in result.sentences)
        if supported and supported >= self.settings.llm_min_supported * len(result.sentences):
            yield result
            return
        # Small models often cite nothing, or cite papers that do not say what they
        # wrote: then the extractive answer (right by construction) is shown instead.
        reason = (
            "gave no valid citation" if not result.citations
            else f"had {supported} of {len(result.sentences)} sentences supported by their "
            "citations"
        )  # fmt: skip
        invented = result.invalid_citations  # still reported: it measures the model
        shown = len(built.sources)  # packing keeps a prefix of the ranked sources
        text, abstained = quote_sources(
            [item for item in scored if item.source_number <= shown], built.sources,
            sentence_floor, self.settings,
        )  # fmt: skip
        timer.lap("fallback")
        result = self._result(
            question, query, text, built.sources, abstained,
            f"{model.label}+extractive-fallback", timer, embed, built,
        )  # fmt: skip
        result.invalid_citations = invented
        result.notes.append(f"{model.label} {reason}; showing the extractive answer instead.")
        result.notes.extend([NO_CITABLE_SENTENCE] if abstained else [])
        yield result

    def standalone_query(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """The retrieval query for a chat turn: follow-ups like "what about its speed?"
        name nothing to search for, so the conversation is condensed into the query.

        With an LLM the condense prompt rewrites it; without one (or when the model's
        rewrite is unusable) the previous question is prepended, which keeps its topic.
        """
        if not history:
            return question
        previous = history[-1][0]
        fallback = f"{previous} {question}"
        if self.mode == "extractive":
            return fallback
        transcript = "\n".join(f"User: {user}\nAssistant: {reply}" for user, reply in history[-3:])
        prompt = load_prompt(self.settings.prompts_dir, "condense").render(
            history=transcript, question=question
        )
        reply = self.chat_model.complete(
            [{"role": "user", "content": prompt}], self.settings.condense_max_tokens
        )
        lines = [line.strip().strip('"').strip() for line in reply.strip().splitlines()]
        condensed = lines[0] if lines else ""
        return condensed if 3 <= len(condensed) <= 300 else fallback

    def _result(
        self,
        question: str,
        query: str,
        text: str,
        sources: list[Source],
        abstained: bool,
        label: str,
        timer: _Timer,
        embed: CachedEmbedder,
        built=None,
    ) -> AnswerResult:
        """Validate markers, renumber by first use, list cited sources first, and check
        each sentence against the abstracts it cites."""
        validated = validate_citations(text, len(sources))
        order = validated.order + [n for n in range(1, len(sources) + 1) if n not in validated.order]
        records = [
            SourceRecord(
                n=position, paper_id=sources[n - 1].paper.id, title=sources[n - 1].paper.title,
                score=round(sources[n - 1].score, 4), url=sources[n - 1].paper.url,
                year=sources[n - 1].paper.year or None, authors=sources[n - 1].paper.authors,
                abstract=sources[n - 1].paper.abstract, cited=n in validated.order,
            )  # fmt: skip
            for position, n in enumerate(order, start=1)
        ]
        timer.lap("validate")
        sentences = [] if abstained else support_sentences(
            validated.text, [record.abstract for record in records], embed,
            self.settings.support_min,
        )  # fmt: skip
        timer.lap("support")
        timer.timings["total"] = round(
            sum(ms for stage, ms in timer.timings.items() if stage != "total"), 1
        )
        return AnswerResult(
            question=question,
            answer=validated.text,
            citations=[
                Citation(n=record.n, paper_id=record.paper_id, title=record.title)
                for record in records
                if record.cited
            ],
            sources=records,
            abstained=abstained,
            llm=label,
            timings_ms=timer.timings,
            invalid_citations=validated.invalid,
            sentences=[SentenceRecord(**vars(sentence)) for sentence in sentences],
            query=query,
            prompt=built.messages if built else None,
        )
