"""Full-text questions over real PDFs: is the right paper found, and is the answer span reached?

    python -m bench.fulltext_bench --index /tmp/ft-index [--with-seed] [--answers] \
        bench/fulltext_dev.jsonl eval/suites/fulltext_gold.jsonl

Builds (once; reused when `--index` already holds papers) an index of the PDFs in
the manifest's directory (eval/suites/fulltext/manifest.json; check it with
`python -m bench.fulltext_corpus`), optionally plus the bundled corpus ("mixed":
mostly one-chunk abstracts, a few long PDFs), then for every answerable question
of each suite reports:

- top5 / top1: a gold title among the first 5 / first retrieved papers;
- passages: the gold paper's `Source.passages` (the body passages retrieval hands
  to the answer stage) contain the reference span;
- evidence: the span is in any text retrieval hands over for the gold paper
  (`best_chunk` or passages) — comparable with code that has no passages;
- `--paper-vectors` makes dense search take the abstract-corpus path (per-paper
  vectors; since this work plus a body-only chunk search) whatever the chunk/paper
  ratio, i.e. what PDFs get among thousands of abstracts, without embedding thousands;
- with `--answers` (default extractive mode): the answer contains the span, and the
  abstention rate on answerable and on unanswerable questions.
Spans are compared after lower-casing and collapsing everything but letters,
digits and a few symbols to single spaces. Results: docs/pdf.md.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.papers import normalise_title
from rag.retrieve import retrieve
from rag.settings import BUNDLED_CORPUS, load_settings

MANIFEST = Path(__file__).resolve().parent.parent / "eval" / "suites" / "fulltext" / "manifest.json"


def norm(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z%±×.,\-]+", " ", text.lower()).split())


def build(index: PaperIndex, with_seed: bool) -> None:
    """Ingest the PDFs (and the bundled corpus); papers already indexed are skipped."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    directory = Path(manifest["directory"])
    paths = [directory / entry["file"] for entry in manifest["papers"]]
    started = time.perf_counter()
    report = ingest_paths(index, [*paths, *([BUNDLED_CORPUS] if with_seed else [])])
    print(f"indexed: {report.summary()} in {time.perf_counter() - started:.0f} s")
    for problem in report.problems():
        print(f"  problem: {problem}")


def gold_files(titles: list[str]) -> set[str]:
    """The manifest files of gold titles: a paper is matched by title or by the PDF it came
    from, so code that extracts titles differently (main's pypdf reader) is judged fairly."""
    wanted = {normalise_title(title) for title in titles}
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return {e["file"] for e in manifest["papers"] if normalise_title(e["title"]) in wanted}


def run_suite(index: PaperIndex, path: Path, answers: bool) -> dict:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    answerer = None
    if answers:
        from rag.answer import Answerer

        answerer = Answerer(index, index.settings)
    counts = {"answerable": 0, "top5": 0, "top1": 0, "passages": 0, "evidence": 0,
              "answer_span": 0, "abstained": 0, "unanswerable": 0, "unanswerable_abstained": 0}  # fmt: skip
    misses = []
    for row in rows:
        if not row["gold"]:
            counts["unanswerable"] += 1
            if answerer is not None:
                counts["unanswerable_abstained"] += answerer.ask(row["question"]).abstained
            continue
        counts["answerable"] += 1
        gold = {normalise_title(title) for title in row["gold"]}
        files = gold_files(row["gold"])
        span = norm(row["answer"])
        sources = retrieve(index, row["question"], 5)
        ranks = [
            i for i, s in enumerate(sources)
            if normalise_title(s.paper.title) in gold or any(s.paper.source.endswith(f) for f in files)
        ]  # fmt: skip
        counts["top5"] += bool(ranks)
        counts["top1"] += bool(ranks) and ranks[0] == 0
        if ranks:
            source = sources[ranks[0]]
            passages = [passage.text for passage in getattr(source, "passages", [])]
            counts["passages"] += any(span in norm(text) for text in passages)
            counts["evidence"] += any(span in norm(t) for t in [source.best_chunk, *passages])
        else:
            misses.append(row["id"])
        if answerer is not None:
            result = answerer.ask(row["question"])
            counts["abstained"] += result.abstained
            counts["answer_span"] += span in norm(result.answer)
    n = max(counts["answerable"], 1)
    summary = {
        "suite": str(path), "answerable": counts["answerable"],
        "top5": round(counts["top5"] / n, 3), "top1": round(counts["top1"] / n, 3),
        "passages_contain_span": round(counts["passages"] / n, 3),
        "evidence_contains_span": round(counts["evidence"] / n, 3),
        "missed_top5": misses,
    }  # fmt: skip
    if answerer is not None:
        summary["answer_contains_span"] = round(counts["answer_span"] / n, 3)
        summary["false_abstention"] = round(counts["abstained"] / n, 3)
        summary["unanswerable_abstention"] = round(
            counts["unanswerable_abstained"] / max(counts["unanswerable"], 1), 3
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="+", type=Path)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--with-seed", action="store_true", help="add the bundled corpus")
    parser.add_argument("--answers", action="store_true", help="also run the answer stage")
    parser.add_argument(
        "--paper-vectors", action="store_true",
        help="dense search as in a corpus of mostly abstracts (per-paper vectors, whatever "
        "the chunk/paper ratio): what a few PDFs among thousands of abstracts get",
    )  # fmt: skip
    args = parser.parse_args()
    if args.paper_vectors:
        import rag.retrieve

        rag.retrieve.PAPER_VECTOR_MAX_CHUNK_RATIO = float("inf")
    settings = load_settings(index=args.index / "index", state_dir=args.index / "state")
    index = PaperIndex(settings)
    build(index, args.with_seed)
    print(f"index: {index.paper_count()} papers, {index.chunk_count()} chunks")
    for suite in args.suites:
        print(json.dumps(run_suite(index, suite, args.answers)))


if __name__ == "__main__":
    main()
