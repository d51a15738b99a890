"""`make bench`: build what the retrieval benchmarks need (once) and run them all.

Each step is skipped when its output already exists under --workdir, so a second
run only re-measures. First run on a 2-core machine: ~5 min to embed the dev set,
~1 min for the seed corpus, ~15-20 min for the 50k latency index.

    python -m bench.run_all [--workdir /tmp/rag-bench] [--skip-latency]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from rag.settings import BUNDLED_CORPUS, PROJECT_ROOT

SEED_SUITE = PROJECT_ROOT / "eval" / "suites" / "seed_gold.jsonl"


def step(*args: str, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, env={**os.environ, **(env or {})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rag-bench"))
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    py, work = sys.executable, args.workdir
    dev, seed, big = work / "dev", work / "seed-index", work / "index-50k"
    one_thread = {"OMP_NUM_THREADS": "1"}  # measured faster for embedding on a busy 2-core box
    if not (dev / "index").exists():
        step(py, "-m", "bench.build_devsets", "--out", str(dev), "--cs-papers", "1500",
             "--kaggle-papers", "1500", "--per-type", "100")  # fmt: skip
        step(py, "-m", "rag.cli", "ingest", str(dev / "corpus.jsonl"), "--index",
             str(dev / "index"), env=one_thread)  # fmt: skip
    step(py, "-m", "bench.retrieval_quality", "--index", str(dev / "index"), "--beir", str(dev),
         "--configs", "dense,lexical,rrf,score,score-d0.3,rrf-d0.3,score-d0.7")  # fmt: skip
    if SEED_SUITE.is_file():
        if not seed.exists():
            step(py, "-m", "rag.cli", "ingest", str(BUNDLED_CORPUS), "--index", str(seed))
        step(py, "-m", "bench.seed_gold", "--index", str(seed), "--suite", str(SEED_SUITE),
             "--configs", "dense,lexical,rrf,score,score-d0.3")  # fmt: skip
    else:
        print(f"skip seed gold: {SEED_SUITE} not found", flush=True)
    if not args.skip_latency:
        step(py, "-m", "bench.build_latency_index", "--out", str(big), env=one_thread)
        step(py, "-m", "bench.retrieval_latency", "--index", str(big), "--queries", "200")


if __name__ == "__main__":
    main()
