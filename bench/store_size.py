"""Bytes and memory per paper of the store, for the 2.5M-paper arithmetic of docs/SCALING.md.

    python -m bench.store_size --sizes 2000,8000                 # local persistent Chroma
    python -m bench.store_size --sizes 2000,8000 --server        # also a `chroma run` server

Papers are real arXiv records (full abstracts, bench.build_latency_index's data) written
through the product's own path (`PaperIndex.add_papers`: splitter, Chroma chunks and
paper records, BM25). Only the vectors are stand-ins: deterministic random unit vectors
of the model's 384 dimensions, because on-disk and in-memory sizes depend on how many
vectors of what dimension there are, not on their values, and embedding thousands of
abstracts on a shared 2-core machine would take hours (embedding speed is measured on
its own in bench.embed_backends). Reported per size: Chroma bytes (SQLite, of which the
trigram full-text index and the write log; HNSW files), BM25 bytes, chunks, peak RSS of
a fresh `rag retrieve` process over the index (lexical mode: the store without the
embedding model; the model's own RSS is measured separately), the time to list every
paper id (a BM25 catch-up after another client's write does that), and in --server mode the
`chroma run` process's RSS after the same writes. The marginal bytes per paper between
the smallest and largest size remove fixed overheads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from bench.build_latency_index import DEFAULT_DATA
from bench.load import free_port, machine, rss_mb
from rag.formats import parse_file
from rag.index import PaperIndex
from rag.settings import PROJECT_ROOT, load_settings

RESULTS = PROJECT_ROOT / "bench" / "results"
DIMENSIONS = 384


class StandInEmbedding(BaseEmbedding):
    """Deterministic random unit vectors (seeded by the text): sizes, not quality."""

    @staticmethod
    def _vector(text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(DIMENSIONS).astype(np.float32)
        return (vector / np.linalg.norm(vector)).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


def tree_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def sqlite_tables(database: Path) -> dict[str, int]:
    """Bytes per table/index of a SQLite file (dbstat), largest first; {} if unavailable."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
    except sqlite3.Error:
        return {}
    return {name: size for name, size in rows[:8]}


def start_chroma(data: Path) -> tuple[subprocess.Popen, int]:
    import httpx

    port = free_port()
    chroma = str(Path(sys.executable).parent / "chroma")
    server = subprocess.Popen([chroma, "run", "--path", str(data), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                return server, port
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("chroma run did not come up")


def reader_peak_rss_mb(index_dir: Path, env: dict[str, str]) -> float:
    """Peak RSS (GNU time's %M) of a fresh `rag retrieve` (lexical mode) over the index."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "peak-rss-kb %M", sys.executable, "-m", "rag.cli", "retrieve",
         "graph neural networks", "--index", str(index_dir)], check=True, cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env, "RAG_RETRIEVAL_MODE": "lexical"},
    )  # fmt: skip
    line = next(line for line in done.stderr.splitlines() if line.startswith("peak-rss-kb "))
    return int(line.split()[1]) / 1024


def measure(papers, size: int, root: Path, server_port: int | None) -> dict:
    overrides = {"index": root / f"index-{size}"}
    env = {}
    if server_port:
        overrides |= {"chroma_host": "127.0.0.1", "chroma_port": server_port,
                      "collection": f"size{size}"}  # fmt: skip
        env = {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(server_port),
               "RAG_COLLECTION": f"size{size}"}  # fmt: skip
    index = PaperIndex(load_settings(**overrides))
    index.__dict__["embedder"] = StandInEmbedding(embed_batch_size=64)
    started = time.perf_counter()
    for start in range(0, size, 1000):
        index.add_papers(papers[start : min(start + 1000, size)])
    row = {"papers": index.paper_count(), "chunks": index.chunk_count(),
           "write_s": round(time.perf_counter() - started, 1),
           "bm25_bytes": tree_bytes(index.lexical.directory)}  # fmt: skip
    started = time.perf_counter()
    index.all_ids()  # what every reader's BM25 catch-up lists after another client's write
    row["all_ids_s"] = round(time.perf_counter() - started, 3)
    if not server_port:
        chroma = overrides["index"] / "chroma"
        row["chroma_bytes"] = tree_bytes(chroma)
        row["sqlite_bytes"] = (chroma / "chroma.sqlite3").stat().st_size
        row["hnsw_bytes"] = row["chroma_bytes"] - row["sqlite_bytes"]
        row["sqlite_tables"] = sqlite_tables(chroma / "chroma.sqlite3")
    row["reader_peak_rss_mb"] = round(reader_peak_rss_mb(overrides["index"], env), 1)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,8000")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--server", action="store_true", help="also through a chroma run server")
    parser.add_argument("--out", type=Path, default=RESULTS / "store_size.json")
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    papers = parse_file(args.data).papers[: sizes[-1]]
    result: dict = {"machine": machine(), "load_average_start": os.getloadavg(),
                    "data": str(args.data), "local": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rag-size-") as tmp:
        root = Path(tmp)
        for size in sizes:
            result["local"][size] = measure(papers, size, root / "local", None)
            print(size, json.dumps(result["local"][size]), file=sys.stderr, flush=True)
        if args.server:
            server, port = start_chroma(root / "server-data")
            try:
                result["server"] = {"rss_mb_empty": round(rss_mb(server.pid), 1)}
                for size in sizes:
                    row = measure(papers, size, root / "server", port)
                    row["server_rss_mb"] = round(rss_mb(server.pid), 1)
                    row["server_data_bytes"] = tree_bytes(root / "server-data")
                    result["server"][size] = row
                    print("server", size, json.dumps(row), file=sys.stderr, flush=True)
            finally:
                server.terminate()
                server.wait(timeout=60)
    small, large = result["local"][sizes[0]], result["local"][sizes[-1]]
    extra_papers = large["papers"] - small["papers"]
    result["marginal_per_paper"] = {
        key: round((large[key] - small[key]) / extra_papers, 1)
        for key in ("chroma_bytes", "sqlite_bytes", "hnsw_bytes", "bm25_bytes", "chunks")
    }
    result["marginal_per_paper"]["reader_rss_kb"] = round(
        (large["reader_peak_rss_mb"] - small["reader_peak_rss_mb"]) * 1024 / extra_papers, 2
    )
    result["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["marginal_per_paper"]), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
