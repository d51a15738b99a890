"""Extract, then generate: the LLM prompt carries the selected evidence, not whole papers.

Each source appears as its number, title and year, then the evidence sentences
chosen for the question (abstract sentences and located body sentences, the
location in parentheses so the model can cite `[2, p. 7]`). Long PDFs therefore
fit, and a small local model reads a short prompt (time to first token grows
with the prompt: docs/answers.md). Without selected evidence a source falls back
to its abstract. Token counts come from tiktoken (rag/tokens.py); lower-ranked
sources are shortened, then dropped, until the prompt plus room for the answer
fits the window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rag.answer.evidence import EvidenceUnit
from rag.prompts import Prompt
from rag.retrieve import Source
from rag.tokens import count_tokens, truncate_tokens

MIN_SOURCE_TOKENS = 60
SAFETY_TOKENS = 64  # tokenizers differ between tiktoken and the served model


def source_text(source: Source, evidence: Sequence[EvidenceUnit] | None = None) -> str:
    """The evidence lines of a source ("- sentence (p. 7)"), or its abstract without any."""
    if evidence:
        return "\n".join(
            f"- {unit.text}" + (f" ({unit.location})" if unit.page else "") for unit in evidence
        )
    return source.paper.abstract


def render_source(number: int, source: Source, text: str) -> str:
    paper = source.paper
    details = "; ".join(str(part) for part in (paper.year or "", paper.authors[:120]) if part)
    header = f"[{number}] {paper.title}" + (f" ({details})" if details else "")
    return f"{header}\n{text}"


@dataclass
class BuiltPrompt:
    messages: list[dict[str, str]]
    sources: list[Source]  # the sources actually shown, numbered 1..n in this order
    prompt_tokens: int


def build_prompt(
    question: str,
    sources: Sequence[Source],
    answer_prompt: Prompt,
    system_prompt: Prompt,
    context_window: int,
    max_answer_tokens: int,
    max_sentences: int = 6,
    evidence: Mapping[int, Sequence[EvidenceUnit]] | None = None,
) -> BuiltPrompt:
    """Fit as many sources as the window allows, best first, shortening the tail ones.

    `evidence[n]` is the evidence selected from source n (1-based); sources without
    evidence show their abstract.
    """

    def render(chosen: list[tuple[Source, str]]) -> list[dict[str, str]]:
        block = "\n\n".join(
            render_source(number, source, text) for number, (source, text) in enumerate(chosen, 1)
        )
        user = answer_prompt.render(
            sources=block, question=question, n_sources=len(chosen), max_sentences=max_sentences
        )
        return [
            {"role": "system", "content": system_prompt.render()},
            {"role": "user", "content": user},
        ]

    budget = context_window - max_answer_tokens - SAFETY_TOKENS
    chosen: list[tuple[Source, str]] = []
    for number, source in enumerate(sources, start=1):
        text = source_text(source, (evidence or {}).get(number))
        room = budget - sum(count_tokens(m["content"]) for m in render(chosen + [(source, "")]))
        if room < MIN_SOURCE_TOKENS:
            break
        chosen.append((source, truncate_tokens(text, room)))
    messages = render(chosen)
    return BuiltPrompt(
        messages=messages,
        sources=[source for source, _ in chosen],
        prompt_tokens=sum(count_tokens(m["content"]) for m in messages),
    )
