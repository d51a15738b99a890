"""The Eval tab: run an evaluation suite with this session's settings; show metrics and plots.

A thin client of `eval.harness.run_eval`: the UI picks the suite and options,
the harness does the work and writes its report files, which are offered for
download. Runs are one at a time (they are the heaviest thing the app does).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gradio as gr

from rag.settings import PROJECT_ROOT, Settings
from ui.options import OptionsTab, session_options

log = logging.getLogger(__name__)

SUITES_DIR = PROJECT_ROOT / "eval" / "suites"


def list_suites(directory: Path = SUITES_DIR) -> list[str]:
    return sorted(path.name for path in directory.glob("*.jsonl")) if directory.is_dir() else []


def metrics_rows(metrics: dict) -> list[list]:
    """{name: value} → [[name, value]] with floats rounded for reading."""
    return [
        [name, round(value, 4) if isinstance(value, float) else value]
        for name, value in metrics.items()
    ]


def by_type_rows(by_type: dict | list) -> tuple[list[str], list[list]]:
    """Per-question-type metrics ({type: {metric: value}}) as a table."""
    if isinstance(by_type, list):  # already rows of dicts
        by_type = {str(row.get("type", i)): row for i, row in enumerate(by_type)}
    metric_names: list[str] = []
    for values in by_type.values():
        metric_names += [name for name in values if name not in metric_names and name != "type"]
    rows = [
        [
            kind,
            *[
                round(v, 4) if isinstance(v := values.get(name), float) else v
                for name in metric_names
            ],
        ]
        for kind, values in by_type.items()
    ]
    return ["type", *metric_names], rows


class EvalTab:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.runs_dir = settings.state_dir / "ui-eval"

    def build(self) -> None:
        suites = list_suites()
        with gr.Row():
            self.suite = gr.Dropdown(
                suites, value=suites[0] if suites else None, label="Suite (eval/suites)",
                elem_id="eval-suite", scale=3,
            )  # fmt: skip
            self.retrieval_only = gr.Checkbox(
                label="Retrieval only (fast: no answers generated)", value=False, scale=2
            )
            self.run = gr.Button("Run evaluation", variant="primary", elem_id="run-eval", scale=1)
        self.status = gr.Markdown(
            "Runs with the answer generator and filters chosen in **Settings**.",
            elem_id="eval-status",
        )
        with gr.Row():
            self.metrics = gr.Dataframe(
                headers=["metric", "value"], value=[], interactive=False, label="Metrics",
                elem_id="eval-metrics",
            )  # fmt: skip
            self.by_type = gr.Dataframe(value=[], interactive=False, label="By question type")
        self.plots = gr.Gallery(
            label="Plots", columns=2, height=460, object_fit="contain", elem_id="eval-plots"
        )
        self.files = gr.File(label="Report files", file_count="multiple", interactive=False)

    def wire(self, options: OptionsTab) -> None:
        self.run.click(
            self.run_suite, [self.suite, self.retrieval_only, *options.components],
            [self.status, self.metrics, self.by_type, self.plots, self.files],
            concurrency_limit=1, concurrency_id="eval-runs", show_progress_on=self.status,
        )  # fmt: skip

    def run_suite(self, suite: str | None, retrieval_only: bool, *values, progress=gr.Progress()):
        nothing = (gr.skip(),) * 4
        if not suite:
            return ("**Problem:** Pick a suite first (none found in eval/suites?).", *nothing)
        path = SUITES_DIR / Path(suite).name  # never a path outside the suites directory
        if not path.is_file():
            return (f"**Problem:** suite {suite} not found", *nothing)
        try:
            from eval.harness import run_eval
        except ImportError:
            return ("**Problem:** The eval harness is not installed with this build.", *nothing)
        options = session_options(*values)
        out_dir = self.runs_dir / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        started = time.perf_counter()

        def answered(done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"{done}/{total} questions")

        try:
            report = run_eval(
                path, options.settings(self.settings), out_dir, retrieval_only=retrieval_only,
                progress=answered,
            )  # fmt: skip
        except Exception as exc:  # a failing run is reported, the app keeps serving
            log.exception("eval run failed")
            return (f"**Problem:** evaluation failed: {type(exc).__name__}: {exc}", *nothing)
        headers, rows = by_type_rows(report.by_type or {})
        files = [str(p) for p in (report.report_html, report.report_json) if p and Path(p).exists()]
        return (
            f"**Done:** {suite}: {len(report.rows)} questions in {time.perf_counter() - started:.1f} s · "
            f"report in `{out_dir}`",
            metrics_rows(report.metrics),
            gr.Dataframe(value=rows, headers=headers),
            [str(p) for p in report.plots],
            files,
        )
