"""report.json (everything, machine-readable) and report.html (tables + PNG plots)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment

from eval.plots import deltas_with_ci, latency_histogram, metrics_by_type

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Eval report: {{ meta.suite }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.good { color: #2a7a3a; } .bad { color: #b0302f; }
details { max-width: 60em; }
</style></head><body>
<h1>Eval report</h1>
<p>Suite <code>{{ meta.suite }}</code> ({{ meta.suite_kind }}{% if meta.retrieval_only %}, retrieval only{% endif %}),
{{ metrics.questions|int }} questions, answers by <code>{{ meta.models.answer or "none" }}</code>,
commit <code>{{ meta.git_commit }}</code>, corpus <code>{{ meta.corpus_fingerprint }}</code>
({{ meta.corpus_papers }} papers), started {{ meta.started }}, took {{ meta.duration_s }} s.</p>

<h2>Overall</h2>
<table><tr><th>metric</th><th>value</th></tr>
{% for name, value in metrics.items() %}<tr><td>{{ name }}</td><td class="num">{{ fmt(value) }}</td></tr>
{% endfor %}</table>

{% if comparison %}<h2>Compared with {{ comparison.previous }}</h2>
<p>Previous commit <code>{{ comparison.previous_commit }}</code>, {{ comparison.paired_questions }} paired questions;
95% paired-bootstrap intervals. Green/red: the interval excludes zero.</p>
<table><tr><th>metric</th><th>previous</th><th>current</th><th>delta</th><th>95% CI</th><th>n</th></tr>
{% for name, d in comparison.metrics.items() %}<tr><td>{{ name }}</td><td class="num">{{ fmt(d.previous) }}</td>
<td class="num">{{ fmt(d.current) }}</td>
<td class="num {% if d.low > 0 %}good{% elif d.high < 0 %}bad{% endif %}">{{ fmt(d.delta) }}</td>
<td class="num">[{{ fmt(d.low) }}, {{ fmt(d.high) }}]</td><td class="num">{{ d.n }}</td></tr>
{% endfor %}</table>{% endif %}

<h2>By question type</h2>
<table><tr><th>metric</th>{% for kind in by_type %}<th>{{ kind }}</th>{% endfor %}</tr>
{% for name in type_metrics %}<tr><td>{{ name }}</td>{% for kind in by_type %}
<td class="num">{{ fmt(by_type[kind].get(name)) }}</td>{% endfor %}</tr>
{% endfor %}</table>

<h2>Plots</h2>
{% for plot in plots %}<p><img src="{{ plot }}" alt="{{ plot }}"></p>{% endfor %}

<h2>Per question</h2>
<table><tr><th>id</th><th>type</th><th>question</th><th>gold</th><th>retrieved (top 3)</th><th>cited</th>
<th>answer</th><th>scores</th><th>ms</th></tr>
{% for row in rows %}<tr><td>{{ row.id }}</td><td>{{ row.type }}</td><td>{% if row.history %}<small>after: {{ row.history|join(" / ") }}</small><br>{% endif %}{{ row.question }}</td>
<td>{{ row.gold|join("; ") }}</td><td>{{ row.retrieved_titles[:3]|join("; ") }}</td>
<td>{{ (row.cited_titles or [])|join("; ") }}</td>
<td><details><summary>{{ "abstained" if row.abstained else (row.answer or "")[:80] }}</summary>{{ row.answer }}
{% if row.reference %}<p><b>reference:</b> {{ row.reference }}</p>{% endif %}</details></td>
<td>{% for name, value in row.scores.items() if value is not none %}{{ name }}={{ fmt(value) }}<br>{% endfor %}</td>
<td class="num">{{ fmt(row.timings_ms.total) }}</td></tr>
{% endfor %}</table>
<h2>Run metadata</h2><pre>{{ meta_json }}</pre>
</body></html>
"""


HEADLINE = (
    "questions", "citation_precision", "citation_recall", "answer_recall", "answer_words",
    "abstention_accuracy", "false_abstention_rate", "latency_p50_ms", "latency_p95_ms",
)  # fmt: skip
"""Listed first in the by-type table: does it cite right, say what the reference says,
stay short, abstain when it should, and in time."""


@dataclass
class WrittenReport:
    json_path: Path
    html_path: Path
    plots: list[Path]


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3f}"


def write_report(
    out_dir: Path, meta: dict, metrics: dict[str, float], by_type: dict[str, dict[str, float]],
    rows: list[dict], comparison: dict | None,
) -> WrittenReport:  # fmt: skip
    """Write report.json, the PNG plots and report.html into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates = [
        metrics_by_type(by_type, out_dir / "metrics_by_type.png"),
        latency_histogram(rows, out_dir / "latency.png"),
        deltas_with_ci(comparison, out_dir / "deltas.png") if comparison else None,
    ]
    plots = [path for path in candidates if path is not None]
    json_path = out_dir / "report.json"
    payload = {
        "meta": meta, "metrics": metrics, "by_type": by_type, "comparison": comparison,
        "plots": [path.name for path in plots], "rows": rows,
    }  # fmt: skip
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    present = {name for values in by_type.values() for name in values}
    type_metrics = [name for name in HEADLINE if name in present] + sorted(present - set(HEADLINE))
    html = Environment(autoescape=True).from_string(TEMPLATE).render(
        meta=meta, metrics=metrics, by_type=by_type, rows=rows, comparison=comparison,
        plots=[path.name for path in plots], type_metrics=type_metrics, fmt=_fmt,
        meta_json=json.dumps(meta, indent=1, ensure_ascii=False),
    )  # fmt: skip
    html_path = out_dir / "report.html"
    html_path.write_text(html, encoding="utf-8")
    return WrittenReport(json_path=json_path, html_path=html_path, plots=plots)
