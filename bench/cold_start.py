"""Cold start: `rag --help`, and `rag chat` from launch to its first answer, phase by phase.

    python -m bench.cold_start                      # --help x5, chat x1 over a ready index
    python -m bench.cold_start --runs 3 --fresh     # also: chat over an empty index (it
                                                    # ingests the bundled corpus first)

`rag --help` is timed as a subprocess (wall and CPU seconds, median of --help-runs),
next to a bare `python -c pass` and `import rag.settings` in the same run, so a
number taken on a loaded machine can be read as a ratio. `rag chat` (extractive) is
started on a free 127.0.0.1 port; phases: launch → HTTP up (/config answers) →
first answer (one question through the app's API with gradio_client, as a browser
would ask it) → a second answer (warm, for comparison), each with the server's CPU
seconds so far. Results go to
bench/results/cold_start.json with the load average at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.load import cpu_s, free_port, machine, rss_mb
from rag.settings import BUNDLED_CORPUS, PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
QUESTION = "What does TokenUnify pretrain on?"


def timed_command(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) for one run of argv."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=PROJECT_ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_of(argv: list[str], runs: int) -> dict:
    walls, cpus = zip(*(timed_command(argv) for _ in range(runs)))
    return {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3),
            "wall_all_s": [round(w, 3) for w in walls]}  # fmt: skip


def help_times(runs: int) -> dict:
    python = sys.executable
    return {
        "python -c pass": median_of([python, "-c", "pass"], runs),
        "import rag.settings": median_of([python, "-c", "import rag.settings"], runs),
        "rag --help": median_of([python, "-m", "rag.cli", "--help"], runs),
    }


def ask(url: str) -> str:
    """One question through the chat app's API, the way bench/load.py asks (extractive)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    client.predict(QUESTION, api_name="/lambda")
    outputs = client.predict([], 5, "extractive", None, "default", "", None, None, "", "", False,
                             api_name="/respond_event")  # fmt: skip
    return str(outputs[4])


def chat_phases(index: Path, ingest_bundled: bool) -> dict:
    """Launch `rag chat`, then time HTTP up, first answer, second answer."""
    port = free_port()
    env = {**os.environ, "RAG_LLM": "extractive", "RAG_PORT": str(port)}
    argv = [sys.executable, "-m", "rag.cli", "chat", "--index", str(index)]
    if not ingest_bundled:
        argv.append("--no-bundled-corpus")
    index.parent.mkdir(parents=True, exist_ok=True)
    log = index.parent / f"cold-start-{port}.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  cwd=PROJECT_ROOT)  # fmt: skip
    phases: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 600
        while "http_up_s" not in phases:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rag chat did not come up; see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).status_code == 200:
                    phases["http_up_s"] = time.perf_counter() - started
                    phases["cpu_s_at_http_up"] = cpu_s(server.pid)
            except httpx.HTTPError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/"
        for name in ("first_answer_s", "second_answer_s"):
            asked = time.perf_counter()
            status = ask(url)
            if "answered by `extractive`" not in status:
                raise RuntimeError(f"not an answer: {status[:200]!r}")
            phases[name] = time.perf_counter() - asked
            phases[f"cpu_s_after_{name.removesuffix('_s')}"] = cpu_s(server.pid)
        phases["launch_to_first_answer_s"] = phases["http_up_s"] + phases["first_answer_s"]
        rss = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {**{k: round(v, 2) for k, v in phases.items()}, "rss_mb_after": round(rss, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--help-runs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1, help="rag chat launches per case")
    parser.add_argument("--fresh", action="store_true", help="also launch over an empty index")
    parser.add_argument("--out", type=Path, default=RESULTS / "cold_start.json")
    args = parser.parse_args(argv)
    result: dict = {"machine": machine(), "load_average_start": os.getloadavg()}
    result["help"] = help_times(args.help_runs)
    print(json.dumps(result["help"], indent=1), file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="rag-cold-") as tmp:
        ready = Path(tmp) / "ready" / "index"
        subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(BUNDLED_CORPUS),
                        "--index", str(ready)], check=True, stdout=subprocess.DEVNULL,
                       cwd=PROJECT_ROOT)  # fmt: skip
        result["chat_ready_index"] = [chat_phases(ready, False) for _ in range(args.runs)]
        print(json.dumps(result["chat_ready_index"]), file=sys.stderr, flush=True)
        if args.fresh:
            result["chat_empty_index"] = [
                chat_phases(Path(tmp) / f"fresh{n}" / "index", True) for n in range(args.runs)
            ]
            print(json.dumps(result["chat_empty_index"]), file=sys.stderr, flush=True)
    result["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
