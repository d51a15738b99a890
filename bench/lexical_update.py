"""What one small write costs the BM25 index at 50k papers: before (full rebuild) vs after (segments).

Builds the lexical index straight from the 50k arXiv abstracts (BM25 needs no
embeddings), then times adding one PDF-sized paper (a head row plus `--passages`
body passages: real abstracts of other papers, ~150 words each) and deleting it
again, `--rounds` times each, with

- before: rag/lexical.py as of commit `--before` (every write rebuilt the whole bm25s
  matrix from stored tokens), loaded from git into a module of its own;
- after: the current rag/lexical.py (a new small segment / a tombstone).

It also times one lexical query on both after the add, since a delta segment must
not make queries slower. Every timing is a median; note the load average beside them.

    PYTHONPATH=. python -m bench.lexical_update [--limit 50000] [--json-out F]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rag  # noqa: F401  (offline environment first)
from rag import lexical as after
from rag.formats import parse_file
from rag.papers import Paper, Passage

DATA = Path("/work/shared/data/arxiv-cs-50k.jsonl.gz")
PASSAGE_SOURCE = Path("/work/shared/data/arxiv-kaggle-sample-2k.jsonl")
BEFORE_COMMIT = "a6801fc"  # last commit with the one-generation (full rebuild) design
QUERIES = ["graph neural networks for molecules", "sparse attention long documents",
           "reinforcement learning from human feedback", "federated learning privacy"]  # fmt: skip


def load_before(commit: str):
    """The previous rag/lexical.py as a module (from git, so it runs beside the current one)."""
    source = subprocess.run(
        ["git", "show", f"{commit}:rag/lexical.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "lexical_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("lexical_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def pdf_sized_paper(passages: int) -> Paper:
    """One long document: a head row plus `passages` located body passages."""
    texts = [paper.abstract for paper in parse_file(PASSAGE_SOURCE).papers[:passages]]
    return Paper(
        "pdf-bench", "A long uploaded report", texts[0],
        passages=tuple(Passage(text, "body", 1 + n // 3, f"{n // 10} Section")
                       for n, text in enumerate(texts)),
    )  # fmt: skip


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(modules: dict, directory: Path, papers: list[Paper], pdf: Paper, rounds: int) -> dict:
    """Build each design's index, then time adds, queries and deletes round by round,
    alternating designs, so a change in machine load hits both alike."""
    indexes = {name: module.LexicalIndex(directory / name) for name, module in modules.items()}
    times: dict[str, dict[str, list[float]]] = {
        name: {"build": [], "add": [], "delete": [], "query": []} for name in modules
    }
    for name, index in indexes.items():
        times[name]["build"].append(timed(lambda: index.add(papers)))
        print(name, "built", file=sys.stderr, flush=True)
    for _ in range(rounds):
        for name, index in indexes.items():
            times[name]["add"].append(timed(lambda: index.add([pdf])))
        for query in QUERIES:
            for name, index in indexes.items():
                times[name]["query"].append(timed(lambda: index.search_passages(query, 10)))
        for name, index in indexes.items():
            assert index.search_passages(pdf.abstract, 1)[0].paper_id == pdf.id
            times[name]["delete"].append(timed(lambda: index.remove([pdf.id])))
            assert index.count() == len(papers)
    return {
        name: {
            "build_s": round(found["build"][0], 2),
            "add_pdf_s": round(statistics.median(found["add"]), 3),
            "delete_pdf_s": round(statistics.median(found["delete"]), 3),
            "query_ms": round(1000 * statistics.median(found["query"]), 1),
        }
        for name, found in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=50_000)
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=BEFORE_COMMIT)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    papers = parse_file(DATA).papers[: args.limit]
    pdf = pdf_sized_paper(args.passages)
    result = {"papers": len(papers), "pdf_passages": len(pdf.passages),
              "load_average": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        modules = {"before": load_before(args.before), "after": after}
        result.update(measure(modules, Path(tmp), papers, pdf, args.rounds))
    result["load_average_end"] = os.getloadavg()
    result["add_speedup"] = round(result["before"]["add_pdf_s"] / result["after"]["add_pdf_s"], 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
