"""Report plots as PNG files, drawn with matplotlib's Agg canvas.

`Figure` objects are used directly (not pyplot), so no GUI backend or global
figure state is involved: safe inside the Gradio server's worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

BY_TYPE_METRICS = (
    "recall@5", "ndcg@10", "citation_precision", "citation_recall", "answer_recall",
    "token_f1", "rouge_l", "numeric_match", "abstention_accuracy", "false_abstention_rate",
    "judge_score",
)  # fmt: skip
"""Rates in [0, 1] shown per question type (latency has its own plot)."""
NOT_RATES = frozenset({"answer_words"})
"""Per-question scores on another scale (words), left out of the rate plots."""


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def metrics_by_type(by_type: dict[str, dict[str, float]], path: Path) -> Path | None:
    """Grouped bars: one group per metric, one bar per question type."""
    names = [m for m in BY_TYPE_METRICS if any(m in values for values in by_type.values())]
    if not names:
        return None
    figure = Figure(figsize=(max(6.0, 1.1 * len(names) + 2), 4.2))
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(by_type))
    for offset, (kind, values) in enumerate(sorted(by_type.items())):
        xs = [i + offset * width for i in range(len(names))]
        axes.bar(xs, [values.get(name, 0.0) for name in names], width, label=kind)
    ticks = [i + 0.4 - width / 2 for i in range(len(names))]
    axes.set_xticks(ticks, names, rotation=30, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score (missing bar = not applicable)")
    axes.set_title("Metrics by question type")
    axes.legend(fontsize=8, ncols=3)
    return _save(figure, path)


def latency_histogram(rows: Sequence[dict], path: Path) -> Path | None:
    totals = [row["timings_ms"]["total"] for row in rows if "total" in row["timings_ms"]]
    if not totals:
        return None
    figure = Figure(figsize=(6, 3.6))
    axes = figure.add_subplot()
    axes.hist(totals, bins=min(30, max(5, len(totals) // 3)), color="#4c72b0")
    axes.set_xlabel("end-to-end latency per question (ms; cached answers keep their first timing)")
    axes.set_ylabel("questions")
    axes.set_title("Latency")
    return _save(figure, path)


def _colour(delta: dict) -> str:
    """Green / red when the CI excludes zero (a real change), grey otherwise."""
    return "#55a868" if delta["low"] > 0 else "#c44e52" if delta["high"] < 0 else "#8c8c8c"


def deltas_with_ci(comparison: dict, path: Path) -> Path | None:
    """Horizontal bars of current - previous per metric, with 95% bootstrap CIs."""
    rows = [
        (n, d) for n, d in sorted(comparison["metrics"].items())
        if not n.endswith("_ms") and n not in NOT_RATES
    ]  # fmt: skip
    if not rows:
        return None
    figure = Figure(figsize=(6.5, 0.4 * len(rows) + 1.5))
    axes = figure.add_subplot()
    ys = range(len(rows))
    deltas = [d["delta"] for _, d in rows]
    errors = [[d["delta"] - d["low"] for _, d in rows], [d["high"] - d["delta"] for _, d in rows]]
    colours = [_colour(d) for _, d in rows]
    axes.barh(list(ys), deltas, xerr=errors, color=colours, capsize=3)
    axes.set_yticks(list(ys), [name for name, _ in rows])
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("current - previous (95% paired-bootstrap CI)")
    axes.set_title("Change since the previous run")
    return _save(figure, path)
