"""The embedding model's forward pass without llama-index or PyTorch: a sentence-
transformers encoder (BERT-style, mean pooling, L2 norm) exported to ONNX, run by
onnxruntime or OpenVINO with the model's fast tokenizer.

Light to import on purpose: rag.embedder wraps an Encoder as a llama-index embedder for
queries and ingest, and an ingest's embedding process (rag.embedder.EmbeddingProcess)
runs one through `start_child` / `embed_in_child` without importing llama-index (~2 s).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PER_TEXT_BATCH = 256
"""Texts handed to the per-text embedder's threads at once (no effect on memory: each run
holds one text). Batches of 16 left a core idle at each batch's end: 27.5 texts/s, 256:
29.8 on the 2-core machine."""


@dataclass(frozen=True)
class EncoderSpec:
    """What to run: the model directory (tokenizer, sequence limit), its exported graph,
    the runtime ("onnx" or "openvino"), threads, and whether each text runs alone."""

    model_dir: Path
    graph: Path
    runtime: str
    threads: int
    per_text: bool = False


class Encoder:
    """Texts to L2-normalised float32 vectors with an exported model (`EncoderSpec`)."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.tokenizer = load_tokenizer(spec.model_dir)
        # Dynamic int8 quantises activations with one scale per run: batched, a text's
        # vector would depend on its batch-mates (cosine ~0.993 between runs), so the same
        # query or sentence would rank differently in eval batches, the UI and the answer
        # cache. One text per run keeps every vector a function of its text. Such small
        # runs parallelise badly inside onnxruntime, so they run single-threaded, `threads`
        # of them at once (one session is safe to run concurrently): 1.18x the texts/s of
        # one two-thread run at a time (docs/BENCHMARKS.md, "Embedder speed").
        self.per_text = spec.per_text
        self.pool = (
            ThreadPoolExecutor(spec.threads, "embed") if spec.per_text and spec.threads > 1 else None
        )  # fmt: skip
        run_threads = 1 if spec.per_text else spec.threads
        opener = _onnxruntime if spec.runtime == "onnx" else _openvino
        self.run = opener(spec.graph, run_threads)

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.per_text and len(texts) > 1:
            if self.pool is None:
                return np.concatenate([self.encode([text]) for text in texts])
            return np.concatenate(list(self.pool.map(self.encode, [[text] for text in texts])))
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.asarray([item.ids for item in encoded], dtype=np.int64)
        mask = np.asarray([item.attention_mask for item in encoded], dtype=np.int64)
        hidden = self.run(ids, mask, np.zeros_like(ids))
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.where(norms == 0, 1.0, norms)


_CHILD: Encoder | None = None


def start_child(spec: EncoderSpec) -> None:
    """The embedding process's initializer: load the encoder once."""
    global _CHILD
    _CHILD = Encoder(spec)


def embed_in_child(texts: list[str]) -> np.ndarray:
    """Vectors as one float32 array: a tenth of the pickle of nested float lists, and
    exact (the model computes in float32)."""
    assert _CHILD is not None
    return _CHILD.encode(texts).astype(np.float32, copy=False)


def load_tokenizer(model_dir: Path):
    """The model's fast tokenizer, truncating where sentence-transformers does and padding
    each batch to its longest text."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(_max_length(model_dir))
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
    return tokenizer


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
    # One infer request per thread: a compiled model's own request serves one call at a
    # time ("Infer Request is busy" when the UI's two answers embed at once).
    local = threading.local()

    def run(ids, mask, types):
        if not hasattr(local, "request"):
            local.request = compiled.create_infer_request()
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return local.request.infer(inputs)[output].copy()

    return run


def _max_length(model_dir: Path) -> int:
    """The sequence limit sentence-transformers applies (MiniLM: 256 word pieces)."""
    import json

    try:
        return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 512
