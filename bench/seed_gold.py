"""Paper-level Recall@5 / nDCG@10 of each retriever on the seed gold suite.

The suite (eval/suites/seed_gold.jsonl, hand-written by the eval work) has lines
{id, question, gold, type} where gold lists paper ids or exact titles; titles
map to ids with rag.papers.title_id, as ingest does. Questions with no gold
(unanswerable) are skipped: recall is undefined for them.

    rag ingest data/seed --index /work/bench-seed-index
    python -m bench.seed_gold --index /work/bench-seed-index --suite eval/suites/seed_gold.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.retrieval_quality import CONFIGS, evaluate
from rag.papers import title_id


def read_suite(path: Path) -> tuple[list[tuple[str, str]], dict[str, dict[str, int]]]:
    """Queries grouped by type (query id `<type>-<id>`) and their gold paper ids."""
    queries, qrels = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        gold = [g if g.startswith("t-") or "." in g[:6] else title_id(g) for g in row.get("gold") or []]
        if not gold:
            continue
        qid = f"{row.get('type', 'q')}-{row['id']}"
        queries.append((qid, row["question"]))
        qrels[qid] = {paper_id: 1 for paper_id in gold}
    return queries, qrels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--suite", type=Path, required=True)
    parser.add_argument("--configs", default="dense,lexical,rrf,score")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    queries, qrels = read_suite(args.suite)
    report = {}
    for name in args.configs.split(","):
        report[name] = evaluate(args.index, queries, qrels, CONFIGS[name])
        overall = report[name]["all"]
        by_type = "  ".join(
            f"{group} {values['recall@5']:.2f}"
            for group, values in report[name].items()
            if group not in ("all", "seconds")
        )
        print(f"{name:>11} | R@5 {overall['recall@5']:.3f} nDCG@10 {overall['ndcg@10']:.3f} "
              f"(n={overall['n']}) | R@5 by type: {by_type}", flush=True)  # fmt: skip
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
