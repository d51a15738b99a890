"""Build the 50k-paper arXiv index used by the latency benchmark, in affordable time.

Honest shortcut: on this shared 2-core machine, embedding 50k full abstracts with
MiniLM takes hours, so the *vectors* here are embeddings of the titles only
(~10x less compute). Everything else is full size and real: 50k chunk vectors
and 50k paper records in Chroma (records carry the full abstracts), and a BM25
index over title + full abstract. Query latency depends on the number and
dimension of vectors and on BM25 posting lengths, not on which text a vector
came from, so the timings transfer; retrieval *quality* on this index does not
(use bench.retrieval_quality on a fully embedded dev index for that).

    python -m bench.build_latency_index --out /work/bench-index-50k
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from rag.formats import parse_file
from rag.index import PaperIndex
from rag.settings import load_settings

DEFAULT_DATA = Path("/work/shared/data/arxiv-cs-50k.jsonl.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="index directory to create")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    papers = parse_file(args.data).papers[: args.limit]
    index = PaperIndex(load_settings(index=args.out))
    done = index.existing_ids([paper.id for paper in papers])
    todo = [paper for paper in papers if paper.id not in done]
    started = time.perf_counter()
    for start in range(0, len(todo), args.batch):
        batch = todo[start : start + args.batch]
        titles_only = [dataclasses.replace(paper, abstract="", body="") for paper in batch]
        index._write(batch, index._chunk_and_embed(titles_only))
        elapsed = time.perf_counter() - started
        print(f"{start + len(batch)}/{len(todo)} papers, {elapsed:.0f}s", file=sys.stderr, flush=True)
    lexical_started = time.perf_counter()
    index.lexical.sync_with(index)
    print(
        f"index: {index.paper_count()} papers, {index.chunk_count()} chunks; "
        f"BM25 sync {time.perf_counter() - lexical_started:.1f}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
