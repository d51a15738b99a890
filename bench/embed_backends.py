"""Local embedder backends on this CPU: throughput and retrieval quality, in one run.

For each backend (torch, onnx, onnx-int8, openvino, openvino-int8) and batch size, embeds the same
abstracts (title + abstract, as ingest does) and reports texts/s: the median of
`--rounds` rounds that interleave the backends, so a change in machine load hits
them alike. Then it scores dense retrieval (nDCG@10 of exact cosine search, so the
number reflects the vectors alone, not HNSW) on two sets: the BEIR dev set of
bench/build_devsets.py, and title → abstract retrieval over `--titles` arXiv papers
(each title is a query whose one relevant document is its own abstract, without the
title): thousands of queries, so a 0.005 difference is above the noise.
Every backend goes through the product's own `load_embedder`.

    python -m bench.build_devsets --out /tmp/devset          # once
    python -m bench.embed_backends --beir /tmp/devset [--texts 1000] [--corpus-limit N] \
        [--titles 3000] [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import rag  # noqa: F401  (offline environment first)
from bench.build_devsets import read_records
from bench.metrics import ndcg_at_k
from bench.retrieval_quality import read_qrels
from rag.embedder import load_embedder
from rag.retrieve import read_queries
from rag.settings import load_settings

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
ARXIV = Path("/work/shared/data/arxiv-cs-50k.jsonl.gz")
TITLES_SKIP = 40_000
"""Title → abstract papers come from the end of the 50k file, away from the first 10k
that the latency indexes and bench/build_devsets.py read."""


def read_corpus(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [(row["_id"], f"{row['title']}\n\n{row['text']}") for row in rows]


def throughput(embed, texts: list[str], batch: int) -> tuple[float, float]:
    """Texts per wall-clock second and per CPU second of this process over `texts`,
    after one warm-up batch.

    On a shared machine wall time measures the neighbours as much as the backend; CPU
    time (with `--threads 1`, so no thread spins while waiting for another) is the
    backend's own work, and x cores is what an idle machine would give.
    """
    embed.embed_batch_size = batch
    embed.get_text_embedding_batch(texts[:batch])
    started, cpu = time.perf_counter(), time.process_time()
    embed.get_text_embedding_batch(texts)
    return len(texts) / (time.perf_counter() - started), len(texts) / (time.process_time() - cpu)


def dense_ndcg(embed, corpus: list[tuple[str, str]], queries, qrels) -> float:
    ids = [doc_id for doc_id, _ in corpus]
    docs = np.asarray(embed.get_text_embedding_batch([text for _, text in corpus]), np.float32)
    asked = np.asarray(embed.get_text_embedding_batch([text for _, text in queries]), np.float32)
    scores = asked @ docs.T
    total = 0.0
    for row, (qid, _) in zip(scores, queries):
        top = np.argsort(-row)[:10]
        total += ndcg_at_k([ids[i] for i in top], qrels[qid], 10)
    return total / len(queries)


def title_ndcg(embed, papers: list[tuple[str, str]]) -> float:
    """nDCG@10 of finding each paper's abstract by its title among all the abstracts
    (one relevant document per query: 1 / log2(rank + 1) when ranked in the top 10)."""
    docs = np.asarray(embed.get_text_embedding_batch([abstract for _, abstract in papers]), np.float32)
    asked = np.asarray(embed.get_text_embedding_batch([title for title, _ in papers]), np.float32)
    scores = asked @ docs.T
    own = scores[np.arange(len(papers)), np.arange(len(papers))]
    rank = (scores > own[:, None]).sum(axis=1)
    return float(np.mean(np.where(rank < 10, 1 / np.log2(rank + 2), 0.0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beir", type=Path, required=True, help="bench.build_devsets output")
    parser.add_argument("--texts", type=int, default=1000, help="abstracts timed per run")
    parser.add_argument("--batches", default="16,64")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--threads", type=int, default=0, help="0 = one per core")
    parser.add_argument("--corpus-limit", type=int, default=0, help="score on the first N papers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--titles", type=int, default=3000, help="title → abstract queries (0: skip)")
    parser.add_argument("--arxiv", type=Path, default=ARXIV)
    parser.add_argument("--quality", help="backends to score (default: all timed); fp32 "
                        "backends give the torch vectors, so one of them stands for all")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    corpus = read_corpus(args.beir / "corpus.jsonl")[: args.corpus_limit or None]
    kept = {doc_id for doc_id, _ in corpus}
    qrels = {
        qid: relevant
        for qid, relevant in read_qrels(args.beir / "qrels" / "test.tsv").items()
        if kept.issuperset(relevant)
    }
    queries = [(qid, text) for qid, text in read_queries(args.beir / "queries.jsonl") if qid in qrels]
    texts = [text for _, text in corpus[: args.texts]]
    titled = [
        (record["title"], record["text"])
        for record in read_records(args.arxiv, args.titles, skip=TITLES_SKIP)
    ] if args.titles else []  # fmt: skip
    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "texts": len(texts), "corpus": len(corpus), "queries": len(queries),
        "title_queries": len(titled), "load_avg_start": os.getloadavg(), "backends": {},
    }  # fmt: skip
    embedders = {}
    for backend in args.backends.split(","):
        started = time.perf_counter()
        embedders[backend] = load_embedder(
            load_settings(embed_backend=backend, embed_threads=args.threads)
        )
        report["backends"][backend] = {"load_s": round(time.perf_counter() - started, 2)}
    if "torch" in embedders:
        import torch

        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    batches = [int(b) for b in args.batches.split(",")]
    timings: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for backend, embed in embedders.items():
            for batch in batches:
                timings.setdefault((backend, batch), []).append(throughput(embed, texts, batch))
    for backend in embedders:
        row = report["backends"][backend]
        for batch in batches:
            wall, cpu = zip(*timings[backend, batch])
            row[f"texts_per_s@{batch}"] = round(float(np.median(wall)), 1)
            row[f"texts_per_cpu_s@{batch}"] = round(float(np.median(cpu)), 1)
        print(backend, row, flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    scored = args.quality.split(",") if args.quality else list(embedders)
    for backend in scored:
        embed = embedders.get(backend) or load_embedder(
            load_settings(embed_backend=backend, embed_threads=args.threads)
        )
        row = report["backends"].setdefault(backend, {})
        row["ndcg@10"] = round(dense_ndcg(embed, corpus, queries, qrels), 4)
        if titled:
            row["title_ndcg@10"] = round(title_ndcg(embed, titled), 4)
        print(backend, row, flush=True)
        report["load_avg_end"] = os.getloadavg()
        if args.json_out:  # after every backend: a long run stopped early keeps its numbers
            args.json_out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
