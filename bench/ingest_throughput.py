"""Whole ingest vs the raw embedder on the same texts in one run: texts/s ratio, and peak RSS.

Takes the first `--papers` arXiv abstracts of the 50k file into a JSONL.gz of their
own, splits them exactly as ingest does (the chunk texts the embedder sees), then
in one process, interleaved so load drift hits both alike:

1. raw: `load_embedder(settings).get_text_embedding_batch(chunk texts)`;
2. ingest: `ingest_paths` of that file into a fresh index (parsing, identity
   resolution, chunking, embedding, Chroma and BM25 writes: the whole pipeline);
3. raw again.

ratio = ingest texts/s / mean raw texts/s (target >= 0.9); ratio_cpu compares the
CPU seconds (all threads, and ingest's embedding process) the same way, which a busy
machine disturbs less. Then, unless --no-rss, `rag ingest` of the same file runs as a
child process into another fresh index, and its wall time and peak RSS (ru_maxrss)
are reported: the memory a user's ingest needs, flat in corpus size when streaming
works (compare --papers 2000 and 10000).

    PYTHONPATH=. python -m bench.ingest_throughput [--papers 2000] [--json-out F]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import rag  # noqa: F401  (offline environment first)

if TYPE_CHECKING:
    from rag.index import PaperIndex

DATA = Path("/work/shared/data/arxiv-cs-50k.jsonl.gz")


def write_subset(target: Path, count: int) -> None:
    with gzip.open(DATA, "rb") as source, gzip.open(target, "wb") as out:
        for line in itertools.islice(source, count):
            out.write(line)


def chunk_texts(index: PaperIndex, path: Path) -> list[str]:
    """What ingest hands the embedder for these papers (text + embed metadata)."""
    from rag.formats import parse_jsonl
    from rag.index import _embed_texts

    return _embed_texts(index.splitter(index._documents(parse_jsonl(path).papers)))


CPU: list[float] = []  # CPU seconds (all threads, ended children) of each timed() call
CHILDREN_CPU: list[float] = []  # of that, the ended child processes' (the embedding one)


def timed(action) -> float:
    """Wall seconds of action(); its CPU seconds go to CPU (steadier under machine load)."""
    started, before = time.perf_counter(), os.times()
    action()
    after = os.times()
    CHILDREN_CPU.append(sum(after[2:4]) - sum(before[2:4]))
    CPU.append(sum(after[:4]) - sum(before[:4]))
    return time.perf_counter() - started


def child_ingest(path: Path, index_dir: Path) -> dict:
    """`rag ingest` in a child process: wall time and its peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "ingest", str(path), "--index", str(index_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"rag ingest failed: {err.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the only child: KiB
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak / 1024), "summary": out.strip()}


def main() -> None:
    # Imported here: ingest's embedding process (spawned) imports this module as its
    # __mp_main__, and would otherwise pay for llama-index and Chroma like rag.cli does not.
    from rag.index import PaperIndex
    from rag.ingest import ingest_paths
    from rag.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--no-rss", action="store_true", help="skip the child `rag ingest`")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / f"arxiv-{args.papers}.jsonl.gz"
        write_subset(data, args.papers)
        settings = load_settings(index=tmp_path / "index")
        index = PaperIndex(settings)
        texts = chunk_texts(index, data)
        embedder = index.embedder
        embedder.get_text_embedding_batch(texts[:64])  # warm-up: model load, first batches
        load_start = os.getloadavg()
        raw = [timed(lambda: embedder.get_text_embedding_batch(texts))]
        report = None

        def ingest() -> None:
            nonlocal report
            report = ingest_paths(index, [data])

        whole = timed(ingest)
        raw.append(timed(lambda: embedder.get_text_embedding_batch(texts)))
        assert report is not None and report.added == index.paper_count() > 0
        assert index.chunk_count() == len(texts) and index.lexical.count() == report.added
        raw_rate = len(texts) / (sum(raw) / len(raw))
        ingest_rate = len(texts) / whole
        raw_cpu, ingest_cpu = (CPU[0] + CPU[2]) / 2, CPU[1]
        result = {
            "papers": report.added,
            "chunks": len(texts),
            "embedder": index.embedder_label,
            "raw_texts_per_s": [round(len(texts) / t, 1) for t in raw],
            "ingest_texts_per_s": round(ingest_rate, 1),
            "ratio": round(ingest_rate / raw_rate, 3),
            "cpu_s": {"raw": round(raw_cpu, 1), "ingest": round(ingest_cpu, 1),
                      "ingest_embedding_process": round(CHILDREN_CPU[1], 1)},
            "ratio_cpu": round(raw_cpu / ingest_cpu, 3),
            "load_average": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(result), file=sys.stderr, flush=True)
        if not args.no_rss:
            result["cli"] = child_ingest(data, tmp_path / "cli-index")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
