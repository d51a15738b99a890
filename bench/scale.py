"""Retrieval latency and memory against corpus size, on full-abstract arXiv indexes.

For each size N (papers): builds `OUT/abs-N` with the product's own ingest
(`python -m rag.cli ingest` on the first N records of the arXiv file, nice 10) unless it
exists, recording the ingest's wall time and peak RSS in
`OUT/abs-N/ingest.json` (the peak of the summed RSS of the ingest and its embedding
process, sampled every 0.5 s, and the largest one process's ru_maxrss); then measures
warm `rag.retrieve.retrieve` latency (hybrid, what the product does per question;
bench/retrieval_latency.py's queries and percentiles)
and the chat UI's memory: `rag chat` started on the index, one question asked through
its HTTP API (/api/ask, extractive), then VmRSS and VmHWM read from /proc.
Writes a JSON report and a plot of latency and memory against size.

    python -m bench.scale --out /work/bench-indexes --sizes 1000,10000,50000 \\
        --json-out bench/results/scale.json --plot docs/plots/latency_memory_vs_size.png
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.retrieval_latency import measure, sample_queries
from rag.index import PaperIndex
from rag.settings import load_settings

DEFAULT_DATA = Path("/work/shared/data/arxiv-cs-50k.jsonl.gz")
QUERIES_FROM = Path("/work/shared/data/arxiv-kaggle-sample-2k.jsonl")
QUESTION = "How do transformers handle long documents efficiently?"
UI_START_TIMEOUT_S = 600
RSS_SAMPLE_S = 0.5  # how often the ingest's process tree is measured


def ingest(index_dir: Path, data: Path, size: int) -> dict:
    """Build the index from the first `size` records with `rag ingest`; wall time and peak RSS."""
    subset = index_dir.parent / f"{index_dir.name}.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as source, gzip.open(subset, "wt") as target:
        for number, line in enumerate(source):
            if number >= size:
                break
            target.write(line)
    command = ["nice", "-n", "10", sys.executable, "-m", "rag.cli", "ingest", str(subset),
               "--index", str(index_dir)]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command)
    peak_tree_kb = 0
    while True:  # ends with the ingest; its ru_maxrss is one process's, never a sum
        peak_tree_kb = max(peak_tree_kb, tree_rss_kb(process.pid))
        done, status, usage = os.wait4(process.pid, os.WNOHANG)
        if done:
            break
        time.sleep(RSS_SAMPLE_S)
    subset.unlink()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: ingest of {size} papers failed")
    seconds = time.perf_counter() - started
    return {"papers": size, "wall_s": round(seconds, 1), "papers_per_s": round(size / seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "peak_tree_rss_mb": round(peak_tree_kb / 1024), "load_avg": os.getloadavg()}  # fmt: skip


def tree_rss_kb(pid: int) -> int:
    """VmRSS (KiB) of a process plus its descendants (the ingest and its embedding
    process), read from /proc; 0 for a process that has just exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except (FileNotFoundError, ProcessLookupError):
        return 0
    own = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0)
    return own + sum(tree_rss_kb(child) for child in children)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ui_memory(index_dir: Path) -> dict:
    """VmRSS / VmHWM (MB) of `rag chat` on the index after one answered question."""
    port = free_port()
    env = {**os.environ, "RAG_LLM": "extractive"}
    command = [sys.executable, "-m", "rag.cli", "chat", "--index", str(index_dir),
               "--port", str(port), "--no-bundled-corpus"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"question": QUESTION}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/ask", body, {"Content-Type": "application/json"}
        )
        deadline = time.monotonic() + UI_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(request, timeout=300) as response:
                    answer = json.load(response)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("error: the chat UI did not answer") from None
                time.sleep(2)
        status = Path(f"/proc/{process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return {
            "vm_rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024),
            "vm_hwm_mb": round(int(fields["VmHWM"].split()[0]) / 1024),
            "answered": bool(answer.get("answer")),
        }
    finally:
        process.terminate()
        process.wait(timeout=60)


def plot(rows: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["papers"] for row in rows]
    figure, (latency, memory) = plt.subplots(1, 2, figsize=(10, 4))
    latency.plot(sizes, [row["hybrid"]["p50_ms"] for row in rows], "o-", label="p50")
    latency.plot(sizes, [row["hybrid"]["p95_ms"] for row in rows], "s-", label="p95")
    latency.axhline(30, color="grey", linestyle=":", label="p50 target (50k)")
    latency.axhline(80, color="grey", linestyle="--", label="p95 target (50k)")
    latency.set(xscale="log", xlabel="papers (full abstracts)", ylabel="ms",
                title="warm hybrid retrieve latency")  # fmt: skip
    latency.legend()
    for key, label in (("ui_rss_mb", "UI VmRSS after 1 answer"), ("ingest_peak_rss_mb", "ingest peak RSS")):
        points = [(row["papers"], row[key]) for row in rows if row.get(key)]
        if points:
            memory.plot(*zip(*points), "o-", label=label)
    memory.set(xscale="log", xlabel="papers (full abstracts)", ylabel="MB", title="memory")
    memory.legend()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the abs-N indexes live")
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-ui", action="store_true", help="skip the chat UI memory")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    queries = sample_queries(QUERIES_FROM, args.queries, seed=7)
    rows = []
    for size in (int(value) for value in args.sizes.split(",")):
        index_dir = args.out / f"abs-{size // 1000}k"
        record = index_dir / "ingest.json"
        if not (index_dir / "chroma").is_dir():
            index_dir.mkdir(parents=True)
            record.write_text(json.dumps(ingest(index_dir, args.data, size)))
        built = json.loads(record.read_text()) if record.is_file() else {}
        index = PaperIndex(load_settings(index=index_dir))
        row = {"papers": index.paper_count(), "embedder": index.embedder_label,
               "ingest_peak_rss_mb": built.get("peak_tree_rss_mb", built.get("peak_rss_mb")), "ingest": built,
               "load_avg": os.getloadavg(), "hybrid": measure(index, queries, None)}  # fmt: skip
        del index
        if not args.no_ui:
            ui = ui_memory(index_dir)
            row.update(ui_rss_mb=ui["vm_rss_mb"], ui_hwm_mb=ui["vm_hwm_mb"], ui_answered=ui["answered"])
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
