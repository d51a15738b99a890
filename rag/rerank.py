"""Optional second stage: rescore the fused candidates with a cross-encoder or the LLM.

Off by default: no cross-encoder weights ship with the product and none may be
downloaded. A user who has a sentence-transformers CrossEncoder on disk points
`rerank` at its directory; it then reads (query, title + abstract) pairs
jointly, which bi-encoders and BM25 cannot, at roughly 20-50 ms per candidate
on a laptop CPU (so `rerank_candidates` stays small). `rerank = "llm"` instead
asks the configured LLM (OpenAI-compatible endpoint or the local server) to
order the candidates listwise in one call: slower, but needs no extra weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from rag.llm import connect_chat_model, resolve_mode
from rag.papers import Paper
from rag.prompts import load_prompt
from rag.settings import Settings
from rag.tokens import truncate_tokens

LLM_RERANKER = "llm"
LLM_RERANK_ABSTRACT_TOKENS = 100  # 20 candidates must fit a 4k local context

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class Ranked(Protocol):
    """What reranking needs of a hit (rag.retrieve.Hit is one): retrieval imports this
    module, never the reverse."""

    paper_id: str
    score: float


H = TypeVar("H", bound=Ranked)


@lru_cache(maxsize=2)
def load_cross_encoder(path: str) -> "CrossEncoder":
    """Load once per process, from a local directory only."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ValueError(f"rerank: cross-encoder directory not found: {path} (use 'off')")
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(directory), device="cpu", local_files_only=True)


def rerank(
    settings: Settings, query: str, hits: Sequence[H], papers: Mapping[str, Paper]
) -> list[H]:
    """The same hits, reordered and rescored by the cross-encoder or the LLM (best first)."""
    if not hits:
        return []
    if settings.rerank == LLM_RERANKER:
        return llm_rerank(settings, query, hits, papers)
    model = load_cross_encoder(settings.rerank)
    pairs = [
        (query, f"{papers[hit.paper_id].title}. {papers[hit.paper_id].abstract}") for hit in hits
    ]
    scores = model.predict(pairs, show_progress_bar=False)
    rescored = [replace(hit, score=float(score)) for hit, score in zip(hits, scores)]
    return sorted(rescored, key=lambda hit: hit.score, reverse=True)


def parse_ranking(reply: str, count: int) -> list[int]:
    """0-based candidate positions in the LLM's order; unknown or repeated numbers dropped."""
    order: list[int] = []
    for token in re.findall(r"\d+", reply):
        position = int(token) - 1
        if 0 <= position < count and position not in order:
            order.append(position)
    return order


def llm_rerank(
    settings: Settings, query: str, hits: Sequence[H], papers: Mapping[str, Paper]
) -> list[H]:
    """One listwise LLM call; candidates it does not mention keep their fused order after
    the ones it ranked, so a terse or partly invalid reply never loses a paper."""
    listing = "\n\n".join(
        f"[{number}] {papers[hit.paper_id].title}\n"
        f"{truncate_tokens(papers[hit.paper_id].abstract, LLM_RERANK_ABSTRACT_TOKENS)}"
        for number, hit in enumerate(hits, start=1)
    )
    prompt = load_prompt(settings.prompts_dir, "rerank").render(query=query, papers=listing)
    model = connect_chat_model(settings, resolve_mode(settings), max_tokens=4 * len(hits) + 16)
    order = parse_ranking(model.complete([{"role": "user", "content": prompt}]), len(hits))
    order += [position for position in range(len(hits)) if position not in order]
    return [
        replace(hits[position], score=1.0 - rank / len(hits))
        for rank, position in enumerate(order)
    ]
