"""Load on a real `rag chat` server: concurrent users, errors, latency, and its memory.

Starts `python -m rag.cli chat` on a free 127.0.0.1 port over an index of the
bundled corpus (built on first use), extractive mode, then drives it through
its own HTTP API with gradio_client, one client (= one browser session) per
user, each asking the questions of bench/answers_dev.jsonl in a loop:

    python -m bench.load --users 20 --seconds 60            # errors, p50/p95, RSS every 10 s
    python -m bench.load --users 20 --seconds 120 --think 20 # users who read before asking again
    python -m bench.load --users 10 --answers 100,1000       # RSS after 100 and 1,000 answers

Without --think a user asks again the moment an answer arrives (closed loop: the
stress number). With --think S each user first waits an exponentially
distributed time of mean S seconds (seeded) before each question, as people
reading answers do.

Where the time goes: the server writes one line per answer (settings
ui_answer_log) with when its handler started, when the answer's result arrived
and when it was sent; joined with the client's own clock (same machine) each
answer's latency splits into: clear (the question box's own call), queue (submit
to handler start: Gradio's queue and worker threads), slot (handler start to
result, minus the answer's own time: waiting for an answer slot, thread start),
answer (the result's timings_ms total, with its stages), render (result to sent:
HTML of the answer and sources) and transport (sent to received by the client).

An error is any failed request or a reply that is not a finished answer.
RSS is the server process's VmRSS (/proc). Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
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


def load_questions() -> list[str]:
    """The dev set's questions in order, follow-up chains turn by turn."""
    questions = []
    for line in QUESTIONS.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            questions += [turn["question"] for turn in record.get("turns", [record])]
    return questions


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(index: Path, port: int, log: Path, answer_log: Path) -> subprocess.Popen:
    """`rag chat` over `index` (ingesting the bundled corpus first if it is empty)."""
    if not (index / "chroma").exists():
        subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(BUNDLED_CORPUS),
                        "--index", str(index)], check=True)  # fmt: skip
    env = {**os.environ, "RAG_LLM": "extractive", "RAG_PORT": str(port),
           "RAG_UI_ANSWER_LOG": str(answer_log)}  # fmt: skip
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
    """`count` users asking in a loop until `stop` is set or `budget` answers were given,
    each waiting an exponential think time of mean `think_s` before each question."""

    def __init__(self, url: str, count: int, questions: list[str], think_s: float = 0.0,
                 seed: int = 0):  # fmt: skip
        self.url, self.count, self.questions = url, count, questions
        self.think_s, self.seed = think_s, seed
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.answers: list[dict] = []  # per answer: session, wall-clock times (client side)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.budget: int | None = None

    def answered(self) -> int:
        with self.lock:
            return len(self.latencies) + len(self.errors)

    def _user(self, number: int) -> None:
        from gradio_client import Client

        try:
            # plain http on loopback: nothing to verify, and with verification on every
            # request's new httpx client loads the CA bundle (42 ms CPU each, most of what
            # 20 simulated users cost the shared cores; a browser pays nothing like it)
            client = Client(self.url, verbose=False, ssl_verify=False)
        except Exception as exc:  # an overloaded server: counted, not a silently dead user
            with self.lock:
                self.errors.append(f"connect: {type(exc).__name__}: {exc}"[:200])
            return
        rng = random.Random(self.seed * 1000 + number)
        turn = number
        while not self.stop.is_set():
            with self.lock:
                if self.budget is not None and len(self.latencies) + len(self.errors) >= self.budget:
                    return
            if self.think_s > 0 and self.stop.wait(rng.expovariate(1 / self.think_s)):
                return
            question = self.questions[turn % len(self.questions)]
            turn += self.count
            started, wall = time.monotonic(), time.time()
            try:
                client.predict(question, api_name="/lambda")
                cleared = time.time()
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
                    self.answers.append({"session": client.session_hash, "asked": wall,
                                         "submitted": cleared, "received": time.time()})  # fmt: skip

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._user, args=(n,), daemon=True)
                   for n in range(self.count)]  # fmt: skip
        for thread in threads:
            thread.start()
        return threads


def breakdown(answers: list[dict], log: Path) -> dict:
    """Each answer's latency split by the server's answer log (see the module docstring).

    A session asks one question at a time, so its client records and its server lines
    pair up in order; a session whose counts differ (an error) is left out."""
    server: dict[str, list[dict]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        record = json.loads(line)
        server.setdefault(record["session"], []).append(record)
    client: dict[str, list[dict]] = {}
    for answer in answers:
        client.setdefault(answer["session"], []).append(answer)
    parts: dict[str, list[float]] = {}
    for session, mine in client.items():
        theirs = server.get(session, [])
        if len(theirs) != len(mine):
            continue
        for ours, logged in zip(sorted(mine, key=lambda a: a["asked"]), theirs):
            timings = logged["timings_ms"]
            answer_s = timings.get("total", 0.0) / 1000
            split = {
                "total": ours["received"] - ours["asked"],
                "clear": ours["submitted"] - ours["asked"],
                "queue": logged["started"] - ours["submitted"],
                "slot": logged["result"] - logged["started"] - answer_s,
                "answer": answer_s,
                "render": logged["sent"] - logged["result"],
                "transport": ours["received"] - logged["sent"],
            }
            split |= {f"answer.{stage}": ms / 1000 for stage, ms in timings.items()
                      if stage not in ("total", "first_token")}  # fmt: skip
            for name, seconds in split.items():
                parts.setdefault(name, []).append(seconds)
    return {
        "answers_split": len(parts.get("total", [])),
        "seconds": {name: {"mean": round(statistics.fmean(values), 3),
                           "p50": round(percentile(values, 0.5), 3),
                           "p95": round(percentile(values, 0.95), 3)}
                    for name, values in parts.items()},  # fmt: skip
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far, all its threads
    (/proc/PID/stat): robust under machine load, unlike wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_run(users: Users, pid: int, seconds: float, every_s: float = 10.0) -> dict:
    """Users ask for `seconds`; answers still in flight then are waited for and counted.

    Also where the machine's CPU went: the server's, and this process's (the simulated
    users' gradio_client sessions), which on one machine compete with the server for
    the same cores; real users' browsers would not."""
    rss = [(0.0, round(rss_mb(pid), 1))]
    server_cpu, clients_cpu = cpu_s(pid), sum(os.times()[:2])
    started = time.monotonic()
    threads = users.start()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(every_s, seconds - elapsed))
        rss.append((round(time.monotonic() - started, 1), round(rss_mb(pid), 1)))
    users.stop.set()
    for thread in threads:
        thread.join(timeout=120)
    wall = time.monotonic() - started
    server_cpu, clients_cpu = cpu_s(pid) - server_cpu, sum(os.times()[:2]) - clients_cpu
    answered = max(1, len(users.latencies))
    return {
        "cpu": {"server_cores": round(server_cpu / wall, 2),
                "clients_cores": round(clients_cpu / wall, 2),
                "server_s_per_answer": round(server_cpu / answered, 3),
                "clients_s_per_answer": round(clients_cpu / answered, 3)},  # fmt: skip
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
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean think time (s, exponential) before each question; 0: none")
    parser.add_argument("--seed", type=int, default=0, help="seed of the think times")
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-load-index"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    questions = load_questions()
    port = free_port()
    log = args.index.parent / f"rag-load-{port}.log"
    answer_log = args.index.parent / f"rag-load-{port}-answers.jsonl"
    answer_log.unlink(missing_ok=True)
    server = start_server(args.index, port, log, answer_log)
    try:
        users = Users(f"http://127.0.0.1:{port}/", args.users, questions)
        users.budget = 2 * args.users  # warm-up: the embedder loads on the first question
        for thread in users.start():
            thread.join(timeout=300)
        users = Users(f"http://127.0.0.1:{port}/", args.users, questions, args.think, args.seed)
        load_before = os.getloadavg()
        if args.answers:
            checkpoints = [int(mark) for mark in args.answers.split(",")]
            result = counted_run(users, server.pid, checkpoints)
        else:
            result = timed_run(users, server.pid, args.seconds)
        result["breakdown"] = breakdown(users.answers, answer_log)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result |= {"users": args.users, "think_s": args.think, "machine": machine(),
               "load_average": {"before": [round(x, 2) for x in load_before],
                                "after": [round(x, 2) for x in os.getloadavg()]},
               "command": "python -m bench.load " + " ".join(argv or sys.argv[1:])}  # fmt: skip
    think = f"-think{args.think:g}" if args.think else ""
    out = args.out or RESULTS / f"load-{result['mode']}-{args.users}u{think}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
