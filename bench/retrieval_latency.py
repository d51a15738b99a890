"""Warm retrieve latency (p50 / p95) on a large index, one query at a time.

What a user waits for in `rag ask` or the chat UI after start-up: query
embedding + Chroma search + BM25 + fusion + fetching paper records. The
embedder and both indexes are loaded and warmed first; then each query is timed
with perf_counter around `retrieve(...)`. Queries are sentences and titles
drawn (seeded) from the arXiv data, so they hit realistic posting lists.

    python -m bench.retrieval_latency --index /work/bench-index-50k --queries 200
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from bench.build_devsets import read_records, sentences
from rag.filters import RetrievalFilters
from rag.index import PaperIndex
from rag.papers import Paper
from rag.retrieve import retrieve
from rag.settings import load_settings

DEFAULT_DATA = Path("/work/shared/data/arxiv-kaggle-sample-2k.jsonl")


def sample_queries(path: Path, count: int, seed: int) -> list[str]:
    """Half titles, half single abstract sentences: short and long queries."""
    rng = random.Random(seed)
    records = read_records(path, 10_000)
    rng.shuffle(records)
    queries = []
    for number, record in enumerate(records[:count]):
        parts = sentences(record["text"])
        queries.append(record["title"] if number % 2 or not parts else rng.choice(parts))
    return queries


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(index: PaperIndex, queries: list[str], filters: RetrievalFilters | None) -> dict:
    for query in queries[:10]:  # warm caches, BM25 mmap pages, HNSW
        retrieve(index, query, index.settings.top_k, filters)
    timings, cpu = [], []
    for query in queries:
        started, cpu_started = time.perf_counter(), time.process_time()
        retrieve(index, query, index.settings.top_k, filters)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    # CPU time of this process (all its threads) per query: on a shared machine the wall
    # time counts the neighbours' work too; CPU ms is what an idle core would need.
    return {
        "p50_ms": round(percentile(timings, 0.50), 1),
        "p95_ms": round(percentile(timings, 0.95), 1),
        "mean_ms": round(statistics.fmean(timings), 1),
        "cpu_p50_ms": round(percentile(cpu, 0.50), 1),
        "cpu_p95_ms": round(percentile(cpu, 0.95), 1),
        "n": len(timings),
    }


def lexical_write_cost(index: PaperIndex) -> dict:
    """Seconds for the BM25 side to take in and drop one paper (a small re-ingest / delete).

    Goes through LexicalIndex only, adding then removing a probe paper, so the
    index ends as it began and stays in step with Chroma.
    """
    probe = Paper("latency-probe", "Probe paper", "A paper added to time the BM25 write path.")
    started = time.perf_counter()
    index.lexical.add([probe])
    added = time.perf_counter()
    index.lexical.remove([probe.id])
    removed = time.perf_counter()
    return {"add_one_s": round(added - started, 2), "delete_one_s": round(removed - added, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="where queries come from")
    parser.add_argument("--modes", default="hybrid,dense,lexical")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    queries = sample_queries(args.data, args.queries, args.seed)
    report = {}
    cases = [(mode, None) for mode in args.modes.split(",")]
    cases.append(("hybrid", RetrievalFilters(year_min=2025, category="cs.CL")))
    for mode, filters in cases:
        index = PaperIndex(load_settings(index=args.index, retrieval_mode=mode))
        name = mode + (" +filters(year 2025-, cs.CL)" if filters else "")
        report[name] = measure(index, queries, filters)
        print(f"{name:>34}: {report[name]} (papers: {index.paper_count()})", flush=True)
    report["lexical_write"] = lexical_write_cost(PaperIndex(load_settings(index=args.index)))
    print(f"BM25 write cost at {index.paper_count()} papers: {report['lexical_write']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
