"""Load on a real `rag chat` server: concurrent users, errors, latency, and its memory.

Starts `python -m rag.cli chat` on a free 127.0.0.1 port over an index of the
bundled corpus (built on first use), extractive mode, then drives it through
its own HTTP API with gradio_client, one client (= one browser session) per
user, each asking the questions of bench/answers_dev.jsonl in a loop:

    python -m bench.load --users 20 --seconds 60            # errors, p50/p95, RSS every 10 s
    python -m bench.load --users 10 --answers 100,1000       # RSS after 100 and 1,000 answers

An error is any failed request or a reply that is not a finished answer.
RSS is the server process's VmRSS (/proc). Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from rag.settings import BUNDLED_CORPUS, PROJECT_ROOT

QUESTIONS = PROJECT_ROOT / "bench" / "answers_dev.jsonl"
RESULTS = PROJECT_ROOT / "bench" / "results"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index: Path, port: int, log: Path) -> subprocess.Popen:
    """`rag chat` over `index` (ingesting the bundled corpus first if it is empty)."""
    if not (index / "chroma").exists():
        subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(BUNDLED_CORPUS),
                        "--index", str(index)], check=True)  # fmt: skip
    env = {**os.environ, "RAG_LLM": "extractive", "RAG_PORT": str(port)}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "chat", "--index", str(index),
             "--no-bundled-corpus"], stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"rag chat exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"rag chat did not come up within 180 s; see {log}")


class Users:
    """`count` users asking in a loop until `stop` is set or `budget` answers were given."""

    def __init__(self, url: str, count: int, questions: list[str]):
        self.url, self.count, self.questions = url, count, questions
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.budget: int | None = None

    def answered(self) -> int:
        with self.lock:
            return len(self.latencies) + len(self.errors)

    def _user(self, number: int) -> None:
        from gradio_client import Client

        client = Client(self.url, verbose=False)
        turn = number
        while not self.stop.is_set():
            with self.lock:
                if self.budget is not None and len(self.latencies) + len(self.errors) >= self.budget:
                    return
            question = self.questions[turn % len(self.questions)]
            turn += self.count
            started = time.monotonic()
            try:
                client.predict(question, api_name="/lambda")
                outputs = client.predict([], 5, "extractive", None, "default", "", None, None,
                                         "", "", False, api_name="/respond_event")  # fmt: skip
                ok = "answered by `extractive`" in str(outputs[4])
                problem = None if ok else f"not an answer: {str(outputs[4])[:120]!r}"
            except Exception as exc:  # every failure counts, none stops the run
                problem = f"{type(exc).__name__}: {exc}"[:200]
            with self.lock:
                if problem:
                    self.errors.append(problem)
                else:
                    self.latencies.append(time.monotonic() - started)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._user, args=(n,), daemon=True)
                   for n in range(self.count)]  # fmt: skip
        for thread in threads:
            thread.start()
        return threads


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def timed_run(users: Users, pid: int, seconds: float, every_s: float = 10.0) -> dict:
    rss = [(0.0, round(rss_mb(pid), 1))]
    started = time.monotonic()
    threads = users.start()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(every_s, seconds - elapsed))
        rss.append((round(time.monotonic() - started, 1), round(rss_mb(pid), 1)))
    users.stop.set()
    for thread in threads:
        thread.join(timeout=120)
    return {
        "mode": "timed", "seconds": seconds, "answers": len(users.latencies),
        "errors": len(users.errors), "error_samples": users.errors[:5],
        "p50_s": round(statistics.median(users.latencies), 2) if users.latencies else None,
        "p95_s": round(percentile(users.latencies, 0.95), 2),
        "answers_per_s": round(len(users.latencies) / seconds, 2),
        "rss_mb_every_10s": rss, "rss_mb_after": round(rss_mb(pid), 1),
    }


def counted_run(users: Users, pid: int, checkpoints: list[int]) -> dict:
    marks = {}
    started = time.monotonic()
    threads = users.start()
    for mark in checkpoints:
        users.budget = mark
        while users.answered() < mark and any(thread.is_alive() for thread in threads):
            time.sleep(0.5)
        for thread in threads:  # let the answers in flight finish, then measure
            thread.join(timeout=120)
        marks[str(mark)] = {"rss_mb": round(rss_mb(pid), 1),
                            "elapsed_s": round(time.monotonic() - started, 1)}  # fmt: skip
        print(f"after {users.answered()} answers: {marks[str(mark)]}", file=sys.stderr, flush=True)
        threads = users.start()
    users.stop.set()
    for thread in threads:
        thread.join(timeout=120)
    first, last = marks[str(checkpoints[0])]["rss_mb"], marks[str(checkpoints[-1])]["rss_mb"]
    return {
        "mode": "counted", "rss_at": marks, "growth": round(last / first - 1, 3),
        "errors": len(users.errors), "error_samples": users.errors[:5],
        "p50_s": round(statistics.median(users.latencies), 2) if users.latencies else None,
        "p95_s": round(percentile(users.latencies, 0.95), 2),
    }


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(int(memory) / 2**20, 1),
            "python": platform.python_version()}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--answers", help="checkpoints, e.g. 100,1000: RSS after each count")
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-load-index"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()
                 if line.strip()]  # fmt: skip
    port = free_port()
    log = args.index.parent / f"rag-load-{port}.log"
    server = start_server(args.index, port, log)
    try:
        users = Users(f"http://127.0.0.1:{port}/", args.users, questions)
        users.budget = 2 * args.users  # warm-up: the embedder loads on the first question
        for thread in users.start():
            thread.join(timeout=300)
        users = Users(f"http://127.0.0.1:{port}/", args.users, questions)
        if args.answers:
            checkpoints = [int(mark) for mark in args.answers.split(",")]
            result = counted_run(users, server.pid, checkpoints)
        else:
            result = timed_run(users, server.pid, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result |= {"users": args.users, "machine": machine(),
               "command": "python -m bench.load " + " ".join(argv or sys.argv[1:])}  # fmt: skip
    out = args.out or RESULTS / f"load-{result['mode']}-{args.users}u.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
