"""The regression gate: a run's metrics against thresholds stored in the repo.

`eval/thresholds.json` names the suite, the answer mode and, per metric, a
floor ("min") or a ceiling ("max"). A metric below its floor, above its ceiling,
or missing fails the gate; the table says which, by how much.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rag.settings import PROJECT_ROOT

THRESHOLDS = PROJECT_ROOT / "eval" / "thresholds.json"


@dataclass(frozen=True)
class GateResult:
    failures: list[str]
    table: str

    @property
    def passed(self) -> bool:
        return not self.failures


def load_thresholds(path: Path = THRESHOLDS) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def check(metrics: dict[str, float], thresholds: dict) -> GateResult:
    """Compare every thresholded metric; the table lists all of them, failing or not."""
    lines = [f"{'metric':<24}{'value':>9}  {'bound':<12}{'margin':>9}  status"]
    failures = []
    for kind, sign in (("min", 1), ("max", -1)):
        for name, bound in sorted(thresholds.get(kind, {}).items()):
            value = metrics.get(name)
            if value is None:
                line = f"{name:<24}{'missing':>9}  {kind} {bound:<8.4f}{'':>9}  FAIL"
            else:
                margin = sign * (value - bound) + 0.0  # no "-0.0" in the table
                status = "ok" if margin >= 0 else "FAIL"
                line = f"{name:<24}{value:>9.4f}  {kind} {bound:<8.4f}{margin:>+9.4f}  {status}"
            lines.append(line)
            if line.endswith("FAIL"):
                failures.append(line)
    return GateResult(failures=failures, table="\n".join(lines))
