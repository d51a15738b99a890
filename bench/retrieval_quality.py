"""Dense vs BM25 vs hybrid on a BEIR-format dev set: nDCG@10, Recall@5/10, MRR@10.

The index must already hold the dev corpus (`rag ingest DIR/corpus.jsonl --index IDX`).
Every configuration runs on the same index through the library's `retrieve_batch`,
so the numbers are what `rag retrieve --queries` would produce. Queries are
grouped by the prefix of their id (`ict-3` → `ict`) so each query type is
reported separately as well as overall.

    python -m bench.retrieval_quality --index IDX --beir DIR [--configs dense,lexical,rrf]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path

from bench.metrics import mrr_at_k, ndcg_at_k, recall_at_k
from rag.index import PaperIndex
from rag.retrieve import read_queries, retrieve_batch
from rag.settings import load_settings

CONFIGS: dict[str, dict] = {
    "dense": {"retrieval_mode": "dense"},
    "lexical": {"retrieval_mode": "lexical"},
    "rrf": {"retrieval_mode": "hybrid", "fusion": "rrf"},
    "score": {"retrieval_mode": "hybrid", "fusion": "score"},
    "score-d0.3": {"retrieval_mode": "hybrid", "fusion": "score", "dense_weight": 0.3},
    "score-d0.7": {"retrieval_mode": "hybrid", "fusion": "score", "dense_weight": 0.7},
    "rrf-d0.3": {"retrieval_mode": "hybrid", "fusion": "rrf", "dense_weight": 0.3},
    "rrf-d0.7": {"retrieval_mode": "hybrid", "fusion": "rrf", "dense_weight": 0.7},
}


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels/test.tsv (query-id, corpus-id, score) with a header line."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(path, encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    return dict(qrels)


def evaluate(index_dir: Path, queries: list[tuple[str, str]], qrels: dict, config: dict) -> dict:
    settings = load_settings(index=index_dir, **config)
    index = PaperIndex(settings)
    started = time.perf_counter()
    results = retrieve_batch(index, queries, 10)
    seconds = time.perf_counter() - started
    groups: dict[str, list[dict]] = defaultdict(list)
    for qid, _ in queries:
        ranked = [source.paper.id for source in results[qid]]
        relevant = qrels.get(qid, {})
        row = {
            "ndcg@10": ndcg_at_k(ranked, relevant, 10),
            "recall@5": recall_at_k(ranked, relevant, 5),
            "recall@10": recall_at_k(ranked, relevant, 10),
            "mrr@10": mrr_at_k(ranked, relevant, 10),
        }
        groups[qid.split("-")[0]].append(row)
        groups["all"].append(row)
    summary = {
        group: {metric: sum(r[metric] for r in rows) / len(rows) for metric in rows[0]}
        | {"n": len(rows)}
        for group, rows in groups.items()
    }
    summary["seconds"] = seconds
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--beir", type=Path, required=True, help="dir with queries.jsonl, qrels/")
    parser.add_argument("--configs", default="dense,lexical,rrf,score")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    queries = read_queries(args.beir / "queries.jsonl")
    qrels = read_qrels(args.beir / "qrels" / "test.tsv")
    queries = [(qid, text) for qid, text in queries if qid in qrels]
    report = {}
    for name in args.configs.split(","):
        report[name] = evaluate(args.index, queries, qrels, CONFIGS[name])
        groups = [g for g in report[name] if g != "seconds"]
        line = "  ".join(f"{g}: nDCG@10 {report[name][g]['ndcg@10']:.3f} R@5 {report[name][g]['recall@5']:.3f}" for g in groups)
        print(f"{name:>11} | {line} | {report[name]['seconds']:.1f}s", flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
