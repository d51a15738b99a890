"""The CI gate: the small suite, extractive, must stay above the stored thresholds."""

from __future__ import annotations

from eval.gate import check, load_thresholds
from eval.harness import run_eval
from rag.settings import PROJECT_ROOT


def test_gate_table_shows_every_bound_and_fails_on_a_drop():
    thresholds = {"min": {"recall@5": 0.8, "token_f1": 0.2}, "max": {"invalid_citation_rate": 0.0}}
    result = check({"recall@5": 0.7, "token_f1": 0.25, "invalid_citation_rate": 0.0}, thresholds)
    assert not result.passed
    assert result.failures == ["recall@5                   0.7000  min 0.8000    -0.1000  FAIL"]
    assert "token_f1                   0.2500  min 0.2000    +0.0500  ok" in result.table
    assert "invalid_citation_rate      0.0000  max 0.0000    +0.0000  ok" in result.table


def test_gate_fails_when_a_thresholded_metric_is_missing_or_above_its_ceiling():
    result = check({"false_abstention_rate": 0.2}, {"min": {"rouge_l": 0.1},
                                                    "max": {"false_abstention_rate": 0.1}})
    assert [line.split()[0] for line in result.failures] == ["rouge_l", "false_abstention_rate"]


def test_ci_suite_meets_the_stored_thresholds(seed_index, seed_settings, tmp_path_factory):
    thresholds = load_thresholds()
    settings = seed_settings.model_copy(
        update={"llm": thresholds["llm"],
                "eval_cache_dir": tmp_path_factory.getbasetemp() / "eval-cache"}  # fmt: skip
    )
    report = run_eval(
        PROJECT_ROOT / thresholds["suite"], settings, tmp_path_factory.mktemp("gate")
    )
    result = check(report.metrics, thresholds)
    assert result.passed, "eval gate failed (metric vs threshold):\n" + result.table
