"""Question → retrieve → build prompt → LLM → validate citations → answer record.

`Answerer.stream` yields text as it is generated and finally the validated
`AnswerResult`; the CLI, the UI and the eval harness all go through it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from functools import cached_property

from pydantic import BaseModel, Field

from rag.citations import validate_citations
from rag.context import build_prompt
from rag.filters import RetrievalFilters
from rag.extractive import extractive_answer, score_sentences
from rag.index import PaperIndex
from rag.llm import ChatModel
from rag.local_llm import ensure_local_server
from rag.prompts import SENTINEL, load_prompt
from rag.retrieve import Source, retrieve
from rag.settings import Settings

EMPTY_INDEX_MESSAGE = "The index is empty: ingest some papers first (rag ingest PATH)."


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


class AnswerResult(BaseModel):
    """The JSON contract of `rag ask --json` (and one line of `--out` in batch mode)."""

    question: str
    answer: str
    citations: list[Citation]
    sources: list[SourceRecord]
    abstained: bool
    llm: str
    timings_ms: dict[str, float]
    invalid_citations: int = 0
    notes: list[str] = Field(default_factory=list)
    prompt: list[dict[str, str]] | None = Field(default=None, exclude=True)


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round((now - self._start) * 1000, 1)
        self._start = now


def resolve_mode(settings: Settings) -> str:
    """'auto' means: a configured endpoint if there is one, else extractive."""
    if settings.llm != "auto":
        return settings.llm
    return "openai" if settings.openai_base_url or settings.openai_api_key else "extractive"


class Answerer:
    """Answers questions over one index with one settings object."""

    def __init__(self, index: PaperIndex, settings: Settings):
        self.index = index
        self.settings = settings
        self.mode = resolve_mode(settings)

    @cached_property
    def chat_model(self) -> ChatModel:
        s = self.settings
        common = dict(
            timeout_s=s.llm_timeout_s, max_retries=s.llm_max_retries,
            max_tokens=s.max_answer_tokens, temperature=s.temperature,
        )  # fmt: skip
        if self.mode == "local":
            server = ensure_local_server(s)
            return ChatModel.connect(
                server.base_url, None, server.model, f"local:{server.model}", **common
            )
        key = s.openai_api_key.get_secret_value() if s.openai_api_key else None
        return ChatModel.connect(
            s.openai_base_url, key, s.openai_model, f"openai:{s.openai_model}", **common
        )

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
        sources = retrieve(self.index, question, self.settings.top_k, filters)
        timer.lap("retrieve")
        if not sources:
            message = EMPTY_INDEX_MESSAGE if self.index.paper_count() == 0 else SENTINEL
            yield message
            yield self._result(question, message, [], True, self.mode, timer)
            return
        if self.mode == "extractive":
            text, abstained = self._extractive(question, sources)
            timer.lap("generate")
            yield text
            yield self._result(question, text, sources, abstained, "extractive", timer)
            return
        built = build_prompt(
            question, sources,
            load_prompt(self.settings.prompts_dir, self.settings.answer_prompt),
            load_prompt(self.settings.prompts_dir, "system"),
            self.context_window, self.settings.max_answer_tokens,
        )  # fmt: skip
        timer.lap("build_prompt")
        model = self.chat_model
        parts: list[str] = []
        for delta in model.stream(built.messages):
            parts.append(delta)
            yield delta
        timer.lap("generate")
        raw = "".join(parts).strip()
        if SENTINEL.lower().rstrip(".") in raw.lower():
            yield self._result(question, SENTINEL, built.sources, True, model.label, timer, built)
            return
        if not validate_citations(raw, len(built.sources)).order:
            text, abstained = self._extractive(question, built.sources)
            timer.lap("fallback")
            result = self._result(
                question, text, built.sources, abstained,
                f"{model.label}+extractive-fallback", timer, built,
            )  # fmt: skip
            result.notes.append(
                f"{model.label} gave no valid citation; showing the extractive answer instead."
            )
            yield result
            return
        yield self._result(question, raw, built.sources, False, model.label, timer, built)

    def _extractive(self, question: str, sources: list[Source]) -> tuple[str, bool]:
        embedder = self.index.embedder
        scored = score_sentences(
            embedder.get_query_embedding(question), sources, embedder.get_text_embedding_batch
        )
        return extractive_answer(
            scored, self.settings.extractive_sentences, self.settings.extractive_min_score
        )

    def _result(
        self,
        question: str,
        text: str,
        sources: list[Source],
        abstained: bool,
        label: str,
        timer: _Timer,
        built=None,
    ) -> AnswerResult:
        """Validate markers, renumber by first use, and list cited sources first."""
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
        timer.timings["total"] = round(sum(timer.timings.values()), 1)
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
            prompt=built.messages if built else None,
        )
