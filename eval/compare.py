"""Compare a run with a previous one: per-metric paired deltas with bootstrap CIs.

Only questions present in both runs are paired, so a grown suite still compares
fairly; `n` says how many pairs each delta rests on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from eval.metrics import paired_bootstrap


def _per_question(row: dict) -> dict[str, float]:
    values = {name: value for name, value in row["scores"].items() if value is not None}
    values["latency_ms"] = row["timings_ms"].get("total")
    return {name: value for name, value in values.items() if value is not None}


def compare_runs(rows: Sequence[dict], previous_dir: Path, resamples: int) -> dict:
    previous = json.loads((previous_dir / "report.json").read_text(encoding="utf-8"))
    before = {row["id"]: _per_question(row) for row in previous["rows"]}
    now = {row["id"]: _per_question(row) for row in rows}
    shared = [qid for qid in now if qid in before]
    names = sorted({name for qid in shared for name in now[qid]})
    deltas = {}
    for name in names:
        both = [q for q in shared if name in now[q] and name in before[q]]
        pairs = [(now[q][name], before[q][name]) for q in both]
        if not pairs:
            continue
        current, earlier = zip(*pairs)
        delta, low, high = paired_bootstrap(current, earlier, resamples)
        deltas[name] = {
            "previous": sum(earlier) / len(earlier), "current": sum(current) / len(current),
            "delta": delta, "low": low, "high": high, "n": len(pairs),
        }  # fmt: skip
    meta = previous.get("meta", {})
    return {
        "previous": str(previous_dir),
        "previous_commit": meta.get("git_commit"),
        "previous_llm_mode": meta.get("llm_mode"),
        "paired_questions": len(shared),
        "metrics": deltas,
    }
