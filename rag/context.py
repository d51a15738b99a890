"""Build the prompt: numbered sources packed into the model's context window.

Token counts come from tiktoken (cl100k_base, loaded from llama-index's bundled
cache, so nothing downloads). Lower-ranked sources are shortened, then dropped,
until the prompt plus room for the answer fits the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import tiktoken

from rag.prompts import Prompt
from rag.retrieve import Source

MIN_SOURCE_TOKENS = 60
SAFETY_TOKENS = 64  # tokenizers differ between tiktoken and the served model


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def truncate_tokens(text: str, limit: int) -> str:
    tokens = encoding().encode(text, disallowed_special=())
    return text if len(tokens) <= limit else encoding().decode(tokens[:limit]) + " …"


def source_text(source: Source) -> str:
    """Abstract, plus the matching passage when it is not already part of the abstract."""
    abstract = source.paper.abstract
    chunk = " ".join(source.best_chunk.split())
    if chunk and chunk[:200] not in " ".join(abstract.split()) and chunk[:200] not in source.paper.title:
        return f"{abstract}\nRelevant passage: {chunk}"
    return abstract


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
) -> BuiltPrompt:
    """Fit as many sources as the window allows, best first, shortening the tail ones."""

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
    for source in sources:
        text = source_text(source)
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
