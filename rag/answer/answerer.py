"""Question → analyse → retrieve → gates → select evidence → compose or generate → validate.

Abstention happens before any generation when the evidence is weak (the gates
of rag/answer/gates.py, calibrated on bench/answers_dev.jsonl), or when the LLM
writes the sentinel sentence. A generated answer whose sentences are mostly not
supported by the evidence they cite is replaced by the extractive answer, with a
note saying so.

`Answerer.stream` yields `Stage` events (what is running), text as it is
generated, and finally the validated `AnswerResult`; the CLI, the UI and the eval
harness all go through it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from pydantic import BaseModel, Field

from rag.answer.citations import validate_citations
from rag.answer.compose import compose
from rag.answer.evidence import (
    EvidenceUnit,
    Selection,
    covered_aspects,
    mentions,
    relevance,
    score_units,
    select_evidence,
    short_title,
    source_text,
    source_units,
)
from rag.answer.gates import (
    Evidence,
    judge_evidence,
    judge_retrieval,
    measure_evidence,
    retrieval_evidence,
)
from rag.answer.generate import BuiltPrompt, build_prompt
from rag.answer.question import (
    Question,
    analyse,
    continues,
    followup_query,
    named_items,
    refers_back,
)
from rag.answer.support import (
    CachedEmbedder,
    answer_sentences,
    shared_vectors,
    strip_markers,
    support_sentences,
)
from rag.filters import RetrievalFilters
from rag.index import PaperIndex
from rag.lexical import stems
from rag.llm import ChatModel, PartialAnswer, connect_chat_model, resolve_mode
from rag.prompts import SENTINEL, load_prompt
from rag.retrieve import Source, retrieve
from rag.settings import Settings

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
    """One answer sentence, the evidence behind it, and what of the question it answers."""

    text: str
    citations: list[int]
    support: float | None  # how closely the cited evidence states the sentence (1.0: a quote)
    evidence: str
    evidence_source: int | None
    supported: bool
    quote: bool = False  # the sentence quotes its evidence verbatim
    location: str = ""  # where the evidence is: "abstract", "p. 7", "§ Results, p. 7"
    covers: list[str] = Field(default_factory=list)  # question words the evidence contains
    answers: float | None = None  # share of the question's aspects the evidence covers


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
    kind: str = ""  # the question's kind (rag/answer/question.py)
    prompt_tokens: int = 0  # tokens of the prompt sent to the LLM (0: none sent)
    complete: bool = True  # False: the LLM's stream stopped early; `answer` is what arrived
    prompt: list[dict[str, str]] | None = Field(default=None, exclude=True)


@dataclass(frozen=True)
class Stage:
    """What the answer stage is doing now ("retrieving", "reading the prompt", ...)."""

    name: str


Turn = tuple[str, str] | AnswerResult
"""An earlier chat turn: (question, answer text), or the turn's full result."""


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round((now - self._start) * 1000, 1) + self.timings.get(stage, 0.0)
        self._start = now


DESCRIBED_SIDE_SHARE = 0.6  # of a described side's words a paper must contain to be "it"
TIMING_EXTRAS = {"total", "first_token"}  # measured inside other stages, not added to total
TITLE_MATCH_BELOW = 0.5  # measure the title match under this best-sentence cosine (calibration grid's top)


def quote_sources(
    question: Question, units: Sequence[EvidenceUnit], sources: Sequence[Source], floor: float,
    settings: Settings, about: dict[str, set[int]] | None = None,
) -> tuple[str, bool, Selection]:  # fmt: skip
    """The extractive answer: (text with [n] markers, abstained, the evidence used).
    Shared with the bench's calibration."""
    selection = select_evidence(question, units, sources, settings, floor, about)
    text, abstained = compose(question, selection)
    return text, abstained, selection


def merge_sources(base: Sequence[Source], extra: Sequence[Source]) -> list[Source]:
    """`base` in its order, then papers of `extra` not already there (stable numbering)."""
    seen = {source.paper.id for source in base}
    merged = list(base)
    for source in extra:
        if source.paper.id not in seen:
            merged.append(source)
            seen.add(source.paper.id)
    return merged


def _plain(sentence: str) -> str:
    """A sentence without markers, spacing or final punctuation: for 'was it said before?'."""
    return " ".join(strip_markers(sentence).split()).rstrip(".!?").lower()


@dataclass
class Standalone:
    """A chat question made to stand alone: its analysis (with carried-over items for a
    follow-up), the retrieval query, the earlier answer's sentences (not to be repeated),
    and the paper ids the earlier answer cited (what "it" refers to)."""

    analysis: Question
    query: str
    asked: Question  # the question's own analysis, before anything was carried over
    earlier: set[str] = field(default_factory=set)
    cited: list[str] = field(default_factory=list)
    referent: bool = False  # the question points at the cited papers: answer only from them


def source_numbers(sources: Sequence[Source], ids: Sequence[str]) -> list[int]:
    """The numbers (1-based) of the sources that are these papers."""
    return [n for n, source in enumerate(sources, start=1) if source.paper.id in ids]


def _cited_ids(turn: Turn) -> list[str]:
    return [citation.paper_id for citation in turn.citations] if isinstance(turn, AnswerResult) else []


def _turn(turn: Turn) -> tuple[str, str, list[str]]:
    """(question, answer text, cited titles) of an earlier turn."""
    if isinstance(turn, AnswerResult):
        return turn.question, turn.answer, [citation.title for citation in turn.citations]
    return turn[0], turn[1], []


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
        self, question: str, history: Sequence[Turn] | None = None,
        filters: RetrievalFilters | None = None,
    ) -> AnswerResult:  # fmt: skip
        result = None
        for item in self.stream(question, history, filters):
            if isinstance(item, AnswerResult):
                result = item
        assert result is not None
        return result

    def stream(
        self, question: str, history: Sequence[Turn] | None = None,
        filters: RetrievalFilters | None = None,
    ) -> Iterator[Stage | str | AnswerResult]:  # fmt: skip
        """Yield `Stage` events and answer text deltas, then the validated AnswerResult
        (always last).

        `history` is the earlier turns of a chat; `filters` restrict which papers may
        be retrieved.
        """
        timer = _Timer()
        settings = self.settings
        embedder = self.index.embedder
        embed = CachedEmbedder(
            embedder.get_text_embedding_batch, shared_vectors(embedder, settings.sentence_cache_size)
        )  # fmt: skip
        chat = self.standalone(question, history or [])
        analysis, query, earlier = chat.analysis, chat.query, chat.earlier
        timer.lap("condense")
        yield Stage("retrieving")
        sources, about = self.retrieval(analysis, query, filters)
        if chat.cited:
            sources = self.with_cited(sources, chat.cited)
        timer.lap("retrieve")
        if not sources:
            message = EMPTY_INDEX_MESSAGE if self.index.paper_count() == 0 else SENTINEL
            yield message
            yield self._result(question, query, message, [], True, self.mode, timer, embed, analysis)
            return
        yield Stage("reading the evidence")
        evidence = retrieval_evidence(
            query, sources, settings.evidence_max_passages, analysis.entities
        )  # fmt: skip
        weakness, floor, units = judge_retrieval(evidence, settings), 0.0, []
        if not weakness:  # the cheap check first: an off-topic question costs no sentence scoring
            units = self.measure(query, sources, evidence, embed)
            weakness, floor = decide_evidence(analysis, evidence, sources, settings, about)
        timer.lap("evidence")
        if weakness:
            yield SENTINEL
            result = self._result(question, query, SENTINEL, sources, True, self.mode, timer, embed, analysis)
            result.notes.append(weakness)
            yield result
            return
        if earlier:  # not again, unless it is what answers the follow-up's own words
            own = set(chat.asked.aspects)
            units = [
                unit for unit in units
                if not any(said.endswith(_plain(unit.text)) for said in earlier)
                or covered_aspects(analysis, unit.text) & own
            ]  # fmt: skip
        if chat.referent:
            meant = set(source_numbers(sources, chat.cited))
            units = [unit for unit in units if unit.source_number in meant]
        if self.mode == "extractive":
            text, abstained, selection = quote_sources(
                analysis, units, sources, floor, settings, about
            )  # fmt: skip
            text, abstained, note = self._followup_check(
                analysis, history or [], selection, sources, text, abstained, chat
            )  # fmt: skip
            timer.lap("generate")
            yield text
            result = self._result(question, query, text, sources, abstained, "extractive", timer, embed, analysis)
            result.notes.extend([note] if note else [NO_CITABLE_SENTENCE] if abstained else [])
            yield result
            return
        yield from self._generate(
            question, query, analysis, sources, units, floor, timer, embed, about
        )  # fmt: skip

    def retrieval(
        self, analysis: Question, query: str, filters: RetrievalFilters | None
    ) -> tuple[list[Source], dict[str, set[int]]]:
        """The papers to answer from, and for a comparison which of them each side is about."""
        sources = retrieve(self.index, query, self.settings.top_k, filters)
        if analysis.kind == "comparison" and analysis.multi_entity and sources:
            return self.retrieve_sides(analysis, sources, filters)
        return sources, {}

    def retrieve_sides(
        self, analysis: Question, sources: list[Source], filters: RetrievalFilters | None
    ) -> tuple[list[Source], dict[str, set[int]]]:
        """Search each side of a comparison on its own and merge (stable numbering), so
        both sides are found and cited. A *described* side ("the gradual-pruning study")
        is about the paper that contains most of the description's words (`described_by`)."""
        for entity in analysis.entities:
            side = " ".join([entity, *analysis.aspect_words])
            hits = retrieve(self.index, side, self.settings.answer_entity_top_k, filters)
            sources = merge_sources(sources, hits)
        return sources, described_by(analysis.entities, sources, self.settings.evidence_max_passages)

    def measure(
        self, query: str, sources: list[Source], evidence: Evidence, embed: CachedEmbedder
    ) -> list[EvidenceUnit]:
        """Score every evidence sentence against the query and fill in `evidence`'s
        sentence-level signals; returns the scored units. Deciding is `decide_evidence`."""
        settings = self.settings
        (query_vector,) = embed([query])  # as retrieval embeds it (get_text_embedding_batch)
        units = score_units(query_vector, sources, embed, settings.evidence_max_passages)
        measure_evidence(
            evidence, query, query_vector, sources, units, self.index.lexical.knows, embed,
            title_below=max(settings.extractive_min_score, TITLE_MATCH_BELOW),
        )  # fmt: skip
        return units

    def standalone(self, question: str, history: Sequence[Turn]) -> Standalone:
        """The question's analysis, the retrieval query, what the earlier turn said and cited.

        Only a real follow-up (pronouns, "what about ...", too short to stand alone, or
        reusing the earlier turn's words while naming nothing new) inherits context, by
        carrying over the earlier turn's named items or cited paper titles
        (rag/answer/question.py), never by gluing whole questions; a new topic starts
        clean. With an LLM the condense prompt rewrites a follow-up. The earlier answer's
        sentences are returned so a follow-up does not repeat them.
        """
        analysis = analyse(question)
        if not history:
            return Standalone(analysis, question, analysis)
        previous_question, previous_answer, titles = _turn(history[-1])
        previous = analyse(previous_question)
        if not (analysis.followup or continues(analysis, previous, titles)):
            return Standalone(analysis, question, analysis)
        carried = (
            list(previous.entities) or [short_title(title) for title in titles[:1]]
            or [  # a bare (question, answer) turn: the answer's distinctive names
                item for item in named_items(strip_markers(previous_answer))
                if not item.replace(" ", "").istitle()
            ][:2]
        )
        query = followup_query(analysis, carried, previous)
        if self.mode != "extractive":
            query = self.condense(question, history) or query
        earlier = {_plain(sentence) for sentence, _ in answer_sentences(previous_answer)}
        kind = analysis.kind if analysis.kind != "open" else previous.kind
        # "How many GPUs trained it?": "it" is the earlier paper, whatever else is named
        pointing = refers_back(analysis)
        entities = (
            tuple(dict.fromkeys([*carried, *analysis.entities])) if pointing and carried
            else analysis.entities or tuple(carried)
        )  # fmt: skip
        if kind == "comparison" and len(entities) < 2:
            kind = "open"
        merged = dataclasses.replace(
            analysis, kind=kind, entities=entities, followup=True,
            aspects=analysis.aspects or previous.aspects,
            aspect_words=analysis.aspect_words or previous.aspect_words,
            wants_numbers=analysis.wants_numbers or (kind == "quantity"),
        )  # fmt: skip
        # "it"/"they" refer to what the earlier answer cited: keep those papers at hand,
        # and answer only from them
        cited = _cited_ids(history[-1]) if pointing or not analysis.entities else []
        return Standalone(
            merged, query, analysis, {text for text in earlier if text}, cited,
            pointing and bool(cited),
        )  # fmt: skip

    def with_cited(self, sources: list[Source], cited: Sequence[str]) -> list[Source]:
        """A follow-up's sources: the papers the earlier answer cited first, scored as the
        top hit so they stay quotable (fetched when retrieval for the follow-up's words
        missed them), then the rest of what retrieval found."""
        found = {source.paper.id: source for source in sources}
        papers = self.index.get_papers([pid for pid in cited if pid not in found])
        top = max((source.score for source in sources), default=1.0)
        carried = [
            dataclasses.replace(found[pid], score=max(top, found[pid].score)) if pid in found
            else Source(paper=papers[pid], score=top, best_chunk=papers[pid].abstract)
            for pid in cited if pid in found or pid in papers
        ]  # fmt: skip
        return merge_sources(carried, sources)

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """The LLM's standalone rewrite of a follow-up ("" when unusable)."""
        turns = [_turn(turn) for turn in history[-3:]]
        transcript = "\n".join(f"User: {user}\nAssistant: {reply}" for user, reply, _ in turns)
        prompt = load_prompt(self.settings.prompts_dir, "condense").render(
            history=transcript, question=question
        )
        reply = self.chat_model.complete(
            [{"role": "user", "content": prompt}], self.settings.condense_max_tokens
        )
        lines = [line.strip().strip('"').strip() for line in reply.strip().splitlines()]
        condensed = lines[0] if lines else ""
        return condensed if 3 <= len(condensed) <= 300 else ""

    def _followup_check(
        self, analysis: Question, history: Sequence[Turn], selection: Selection,
        sources: Sequence[Source], text: str, abstained: bool, chat: Standalone,
    ) -> tuple[str, bool, str]:  # fmt: skip
        """A follow-up whose own aspects ("its limitations") no selected sentence covers,
        or about a paper with no sentence close enough, is answered with what the papers
        do not say, not with a loosely related quote."""
        if not history or not analysis.followup or (abstained and not chat.referent):
            return text, abstained, ""
        mine = chat.asked
        own = mine.aspects
        covered = any(covered_aspects(analysis, unit.text) & set(own) for unit in selection.units)
        named = all(  # "How many GPUs ...": a sentence must name what the follow-up names
            any(mentions(unit.text, entity) for unit in selection.units) for entity in mine.entities
        )  # fmt: skip
        if not abstained and named and (not own or covered):
            return text, abstained, ""
        asked = " ".join([*mine.entities, *mine.aspect_words]) or "this"
        cited = source_numbers(sources, chat.cited) if chat.referent else list(dict.fromkeys(u.source_number for u in selection.units))
        titles = "; ".join(short_title(sources[n - 1].paper.title) for n in cited[:2])
        message = f"The retrieved papers ({titles}) do not say anything about “{asked}”."
        return message, True, "no sentence of the retrieved papers covers what the follow-up asks."

    def _generate(
        self, question: str, query: str, analysis: Question, sources: list[Source],
        units: list[EvidenceUnit], floor: float, timer: _Timer, embed: CachedEmbedder,
        about: dict[str, set[int]],
    ) -> Iterator[Stage | str | AnswerResult]:  # fmt: skip
        """Extract, then generate: the prompt carries the selected evidence sentences."""
        settings = self.settings
        text, abstained, selection = quote_sources(analysis, units, sources, floor, settings, about)
        evidence = prompt_evidence(analysis, units, selection, settings, self.mode == "local")
        shown = [number for number in range(1, len(sources) + 1) if number in evidence]
        built = build_prompt(
            query, [sources[n - 1] for n in shown],
            load_prompt(settings.prompts_dir, settings.answer_prompt),
            load_prompt(settings.prompts_dir, "system"),
            self.context_window, settings.max_answer_tokens,
            evidence={position: evidence[n] for position, n in enumerate(shown, start=1)},
        )  # fmt: skip
        timer.lap("build_prompt")
        yield Stage("reading the prompt")
        model = self.chat_model
        parts: list[str] = []
        started = time.perf_counter()
        try:
            for delta in model.stream(built.messages):
                if not parts:
                    timer.timings["first_token"] = round((time.perf_counter() - started) * 1000, 1)
                    yield Stage("generating")
                parts.append(delta)
                yield delta
        except PartialAnswer as cut:  # shown as it came, marked incomplete, never passed off
            timer.lap("generate")
            result = self._result(
                question, query, "".join(parts).strip(), built.sources, False, model.label,
                timer, embed, analysis, built,
            )  # fmt: skip
            result.complete = False
            result.notes.append(str(cut))
            yield result
            return
        timer.lap("generate")
        raw = "".join(parts).strip()
        if SENTINEL.lower().rstrip(".") in raw.lower():
            yield self._result(
                question, query, SENTINEL, built.sources, True, model.label, timer, embed,
                analysis, built,
            )  # fmt: skip
            return
        result = self._result(
            question, query, raw, built.sources, False, model.label, timer, embed, analysis, built
        )
        supported = sum(sentence.supported for sentence in result.sentences)
        if supported and supported >= settings.llm_min_supported * len(result.sentences):
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
        timer.lap("fallback")
        result = self._result(
            question, query, text, sources, abstained, f"{model.label}+extractive-fallback",
            timer, embed, analysis, built,
        )  # fmt: skip
        result.invalid_citations = invented
        result.notes.append(f"{model.label} {reason}; showing the extractive answer instead.")
        result.notes.extend([NO_CITABLE_SENTENCE] if abstained else [])
        yield result

    def _result(
        self, question: str, query: str, text: str, sources: Sequence[Source], abstained: bool,
        label: str, timer: _Timer, embed: CachedEmbedder, analysis: Question,
        built: BuiltPrompt | None = None,
    ) -> AnswerResult:  # fmt: skip
        """Validate markers (and pages), renumber by first use, list cited sources first,
        and check each sentence against the evidence it cites."""
        pages = {
            n: {passage.page for passage in source.passages if passage.page}
            for n, source in enumerate(sources, start=1)
        }
        validated = validate_citations(text, len(sources), pages)
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
        passages = self.settings.evidence_max_passages
        documents = [
            [(unit.text, unit.location) for unit in source_units(n, sources[n - 1], passages)]
            for n in order
        ]
        sentences = [] if abstained else support_sentences(
            validated.text, documents, embed, self.settings.support_min, analysis,
        )  # fmt: skip
        timer.lap("support")
        timer.timings["total"] = round(
            sum(ms for stage, ms in timer.timings.items() if stage not in TIMING_EXTRAS), 1
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
            kind=analysis.kind,
            prompt_tokens=built.prompt_tokens if built else 0,
            prompt=built.messages if built else None,
        )


def described_by(
    entities: Sequence[str], sources: Sequence[Source], max_passages: int
) -> dict[str, set[int]]:
    """For each multi-word side named by no paper verbatim ("the gradual-pruning study"),
    the source (number) whose title and text hold the largest share of its words, when
    that share reaches DESCRIBED_SIDE_SHARE (ties: the better-ranked source)."""
    texts = [source_text(source, max_passages) for source in sources]
    about: dict[str, set[int]] = {}
    for entity in entities:
        words = set(stems(entity))
        if " " not in entity or not words or any(mentions(text, entity) for text in texts):
            continue
        shares = [len(words & set(stems(text))) / len(words) for text in texts]
        best = max(range(len(shares)), key=lambda i: (shares[i], -i), default=None)
        if best is not None and shares[best] >= DESCRIBED_SIDE_SHARE:
            about[entity] = {best + 1}
    return about


def decide_evidence(
    analysis: Question, evidence: Evidence, sources: Sequence[Source], settings: Settings,
    about: dict[str, set[int]] | None = None,
) -> tuple[str, float]:  # fmt: skip
    """(why to abstain or "", the cosine a sentence needs to be quoted): the gates of
    rag/answer/gates.py, except that a comparison is answerable when some retrieved paper
    names one of its sides, or is about a described side (`about`). Pure, so
    bench/answers_bench.py re-decides one measurement under many settings."""
    if not (analysis.kind == "comparison" and analysis.multi_entity):
        return judge_evidence(evidence, settings)
    texts = [source_text(source, settings.evidence_max_passages) for source in sources]
    named = [
        entity for entity in analysis.entities
        if (about or {}).get(entity) or any(mentions(text, entity) for text in texts)
    ]  # fmt: skip
    if named:
        return "", 0.0
    return (
        "no retrieved paper mentions " + " or ".join(f"'{e}'" for e in analysis.entities)
        + ": the sources do not answer it."
    ), 0.0  # fmt: skip


def prompt_evidence(
    analysis: Question, units: Sequence[EvidenceUnit], selection: Selection, settings: Settings,
    small: bool,
) -> dict[int, list[EvidenceUnit]]:  # fmt: skip
    """Evidence sentences for the LLM, by source number: the extractive selection plus the
    next most relevant sentences, up to `prompt_evidence_sentences` (fewer for the small
    local model), each source's sentences in reading order."""
    cap = settings.local_prompt_evidence_sentences if small else settings.prompt_evidence_sentences
    chosen = list(selection.units)
    for unit in sorted(units, key=lambda u: relevance(u, analysis, settings), reverse=True):
        if len(chosen) >= cap:
            break
        if unit not in chosen:
            chosen.append(unit)
    grouped: dict[int, list[EvidenceUnit]] = {}
    for unit in sorted(chosen[:cap], key=lambda u: (u.source_number, u.position)):
        grouped.setdefault(unit.source_number, []).append(unit)
    return grouped
