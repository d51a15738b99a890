"""Optional second stage: rescore the fused candidates with a cross-encoder.

Off by default: no cross-encoder weights ship with the product and none may be
downloaded. A user who has a sentence-transformers CrossEncoder on disk points
`rerank` at its directory; it then reads (query, title + abstract) pairs
jointly, which bi-encoders and BM25 cannot, at roughly 20-50 ms per candidate
on a laptop CPU (so `rerank_candidates` stays small).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rag.papers import Paper
from rag.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

    from rag.retrieve import Hit


@lru_cache(maxsize=2)
def load_cross_encoder(path: str) -> "CrossEncoder":
    """Load once per process, from a local directory only."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ValueError(f"rerank: cross-encoder directory not found: {path} (use 'off')")
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(directory), device="cpu", local_files_only=True)


def rerank(
    settings: Settings, query: str, hits: Sequence["Hit"], papers: Mapping[str, Paper]
) -> list["Hit"]:
    """The same hits, reordered and rescored by the cross-encoder (best first)."""
    from rag.retrieve import Hit

    if not hits:
        return []
    model = load_cross_encoder(settings.rerank)
    pairs = [
        (query, f"{papers[hit.paper_id].title}. {papers[hit.paper_id].abstract}") for hit in hits
    ]
    scores = model.predict(pairs, show_progress_bar=False)
    rescored = [Hit(hit.paper_id, float(score), hit.text) for hit, score in zip(hits, scores)]
    return sorted(rescored, key=lambda hit: hit.score, reverse=True)
