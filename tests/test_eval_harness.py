"""run_eval end to end on the real seed index: report files, cache, compare, BEIR, CLI."""

from __future__ import annotations

import json
import re

import pytest

from eval.harness import EvalError, run_eval
from eval.loaders import SuiteError
from eval.metrics import answer_recall
from rag.cli import main
from rag.settings import BUNDLED_CORPUS, PROJECT_ROOT

CI_SUITE = PROJECT_ROOT / "eval" / "suites" / "ci_small.jsonl"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Four ci_small questions: one answerable of three kinds and one unanswerable."""
    records = [json.loads(line) for line in CI_SUITE.read_text().splitlines()]
    wanted = ["seed-fact-01", "seed-nume-01", "seed-mult-01", "seed-unan-01"]
    path = tmp_path_factory.mktemp("suite") / "four.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records if r["id"] in wanted))
    return path


@pytest.fixture(scope="module")
def eval_settings(seed_index, seed_settings, tmp_path_factory):
    # Shares the gate test's cache directory, so questions it answered are not answered twice.
    cache = tmp_path_factory.getbasetemp() / "eval-cache"
    return seed_settings.model_copy(update={"llm": "extractive", "eval_cache_dir": cache})


@pytest.fixture(scope="module")
def first_run(suite, eval_settings, tmp_path_factory):
    calls = []
    report = run_eval(suite, eval_settings, tmp_path_factory.mktemp("run1"),
                      progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    return report, calls


def test_report_has_metrics_rows_plots_and_metadata(first_run):
    report, calls = first_run
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert report.metrics["questions"] == 4
    for name in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "citation_precision",
                 "citation_recall", "invalid_citation_rate", "abstention_accuracy",
                 "false_abstention_rate", "token_f1", "rouge_l", "numeric_match",
                 "answer_recall", "answer_words", "latency_p50_ms", "latency_p95_ms", "retrieve_p50_ms"):  # fmt: skip
        assert name in report.metrics, name
    assert set(report.by_type) == {"factual", "numeric", "multi", "unanswerable", "multi-paper"}
    assert report.by_type["multi-paper"]["questions"] == 1  # the multi row's two gold papers
    assert "abstention_accuracy" in report.by_type["unanswerable"]
    assert "recall@5" not in report.by_type["unanswerable"]
    assert "answer_recall" in report.by_type["multi"]
    assert "answer_recall" not in report.by_type["unanswerable"]
    assert [path.name for path in report.plots] == ["metrics_by_type.png", "latency.png"]
    assert all(path.read_bytes().startswith(PNG) for path in report.plots)
    saved = json.loads(report.report_json.read_text())
    assert saved["metrics"] == report.metrics and len(saved["rows"]) == 4
    meta = saved["meta"]
    assert meta["llm_mode"] == "extractive" and meta["models"]["answer"] == "extractive"
    assert set(meta["prompt_hashes"]) == {"answer", "system"}
    assert len(meta["corpus_fingerprint"]) == 16 and meta["corpus_papers"] == 273
    assert meta["git_commit"] and "openai_api_key" not in meta["settings"]
    html = report.report_html.read_text()
    assert 'src="metrics_by_type.png"' in html and "seed-mult-01" in html


def test_rows_hold_gold_citations_answer_and_scores(first_run):
    report, _ = first_run
    multi = next(row for row in report.rows if row["id"] == "seed-mult-01")
    assert len(multi["gold_ids"]) == 2 and multi["gold_ids"][0].startswith("t-")
    assert multi["answer"] and multi["cited"] and len(multi["retrieved"]) == 10
    assert 0 <= multi["scores"]["citation_recall"] <= 1
    expected = 0.0 if multi["abstained"] else answer_recall(multi["answer"], multi["reference"])
    assert multi["scores"]["answer_recall"] == expected
    assert ("answer_words" in multi["scores"]) == (not multi["abstained"])
    unanswerable = next(row for row in report.rows if row["type"] == "unanswerable")
    assert unanswerable["gold_ids"] == [] and set(unanswerable["scores"]) == {
        "abstention_accuracy", "invalid_citation_rate"}  # fmt: skip


def test_rerun_uses_the_cache_and_compare_reports_zero_deltas(first_run, suite, eval_settings,
                                                              tmp_path):  # fmt: skip
    report, _ = first_run
    again = run_eval(suite, eval_settings, tmp_path, compare=report.report_json.parent)
    assert all(row["cached"] for row in again.rows)
    assert again.metrics == report.metrics
    deltas = again.comparison["metrics"]
    assert again.comparison["paired_questions"] == 4
    assert deltas["recall@5"]["delta"] == 0 and deltas["recall@5"]["n"] == 3
    assert deltas["answer_recall"]["delta"] == 0 and deltas["answer_recall"]["n"] == 3
    assert (tmp_path / "deltas.png").read_bytes().startswith(PNG)


def test_a_changed_setting_misses_the_cache(suite, eval_settings, tmp_path):
    changed = eval_settings.model_copy(update={"extractive_sentences": 1})
    report = run_eval(suite, changed, tmp_path)
    assert not any(row["cached"] for row in report.rows)


def test_changed_code_misses_the_cache(first_run, suite, eval_settings, tmp_path, monkeypatch):
    """Same settings, different rag source: the answers must be regenerated."""
    import eval.cache

    monkeypatch.setattr(eval.cache, "code_fingerprint", lambda: "edited-source")
    report = run_eval(suite, eval_settings, tmp_path)
    assert not any(row["cached"] for row in report.rows)


def test_code_fingerprint_reads_the_rag_package():
    from eval.cache import code_fingerprint

    assert len(code_fingerprint()) == 16 and code_fingerprint() == code_fingerprint()


def test_retrieval_only_skips_answers(suite, eval_settings, tmp_path):
    report = run_eval(suite, eval_settings, tmp_path, retrieval_only=True)
    assert "answer" not in report.rows[0] and "token_f1" not in report.metrics
    assert report.meta["retrieval_only"] and "recall@10" in report.metrics


def test_beir_directory_gets_its_own_cached_index(eval_settings, tmp_path):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = {
        "p1": ("Pointer Networks", "Attention used as a pointer selects input positions."),
        "p2": ("Fractal pre-training", "Pre-training on generated fractal images."),
        "p3": ("Beam search diversity", "Decoding a diverse list of outputs."),
    }
    (beir / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": k, "title": t, "text": x}) + "\n" for k, (t, x) in docs.items()))
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "fractal images"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tp2\t2\nq1\tp3\t1\n")
    report = run_eval(beir, eval_settings, tmp_path / "out")
    assert report.meta["suite_kind"] == "beir" and report.meta["retrieval_only"]
    assert report.meta["corpus_papers"] == 3
    assert report.rows[0]["retrieved"][0] == "p2" and report.metrics["recall@10"] == 1.0
    assert str(eval_settings.eval_cache_dir) in report.meta["index"]
    again = run_eval(beir, eval_settings, tmp_path / "out2")
    assert again.meta["index"] == report.meta["index"]


def test_suite_not_matching_the_index_is_a_clear_error(eval_settings, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "x", "question": "q?", "gold": ["No Such Paper"],
                                 "type": "factual"}) + "\n")  # fmt: skip
    with pytest.raises(EvalError, match="1 gold references .* x: No Such Paper"):
        run_eval(other, eval_settings, tmp_path / "out")
    with pytest.raises(EvalError, match="suite not found"):
        run_eval(tmp_path / "missing.jsonl", eval_settings, tmp_path / "out")
    with pytest.raises(SuiteError, match="BEIR directory"):
        run_eval(BUNDLED_CORPUS, eval_settings, tmp_path / "out")


def test_cli_eval_prints_metrics_and_report_path(suite, eval_settings, tmp_path, monkeypatch,
                                                 capsys):  # fmt: skip
    monkeypatch.setenv("RAG_EVAL_CACHE_DIR", str(eval_settings.eval_cache_dir))
    out = tmp_path / "cli"
    code = main(["eval", str(suite), "--index", str(eval_settings.index), "--llm", "extractive",
                 "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "recall@5" in printed and f"report: {out / 'report.html'}" in printed
    assert main(["eval", str(tmp_path / "nope.jsonl"), "--index", str(eval_settings.index)]) == 1
    assert capsys.readouterr().err.startswith("error: suite not found")


def test_a_chain_is_answered_in_order_with_its_history(eval_settings, tmp_path, monkeypatch):
    from rag.answer import Answerer

    title = "IndicSTR12: A Dataset for Indic Scene Text Recognition"
    chain = {"id": "c", "type": "followup", "turns": [
        {"question": "How many word-images does IndicSTR12 contain?", "type": "numeric",
         "gold": [title], "answer": "Over 27000 word-images gathered from natural scenes."},
        {"question": "Which baseline models are benchmarked on it?", "gold": [title],
         "answer": "PARSeq, CRNN, and STARNet."},
        {"question": "How much did it cost to collect?", "gold": [title], "unanswerable": True},
    ]}  # fmt: skip
    path = tmp_path / "chain.jsonl"
    path.write_text(json.dumps(chain) + "\n")
    asked = []
    real_ask = Answerer.ask

    def spy(self, question, history=None, filters=None):
        asked.append((question, list(history or [])))
        return real_ask(self, question, history, filters)

    monkeypatch.setattr(Answerer, "ask", spy)
    settings = eval_settings.model_copy(update={"eval_cache_dir": tmp_path / "cache"})
    report = run_eval(path, settings, tmp_path / "out")
    first, second, third = report.rows
    assert [row["id"] for row in report.rows] == ["c#1", "c#2", "c#3"]
    assert [row["type"] for row in report.rows] == ["numeric", "followup", "followup"]
    assert asked[0] == (chain["turns"][0]["question"], [])
    # earlier turns travel as full results, as in the chat UI (their cited papers carry over)
    assert asked[1][0] == chain["turns"][1]["question"]
    assert [(turn.question, turn.answer) for turn in asked[1][1]] == [
        (chain["turns"][0]["question"], first["answer"])
    ]
    assert [c.paper_id for c in asked[1][1][0].citations] == first["cited"]
    assert (asked[2][1][-1].question, asked[2][1][-1].answer) == (
        chain["turns"][1]["question"], second["answer"]
    )
    assert second["history"] == [chain["turns"][0]["question"]] and second["query"]
    assert "answer_recall" in second["scores"] and "recall@5" in second["scores"]
    assert set(third["scores"]) == {"abstention_accuracy", "invalid_citation_rate"}
    assert set(report.by_type) == {"numeric", "followup"}
    # a rerun replays the whole chain from the cache (history is part of the key)
    again = run_eval(path, settings, tmp_path / "again")
    assert all(row["cached"] for row in again.rows) and len(asked) == 3


def test_missing_gold_names_the_corpus_the_suite_needs(eval_settings, tmp_path):
    path = tmp_path / "suite.jsonl"
    record = {"id": "x", "question": "q?", "gold": ["No Such Paper"], "type": "factual",
              "corpus": "pdfs"}  # fmt: skip
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(EvalError, match=re.escape(f"rag ingest {tmp_path / 'pdfs'}")):
        run_eval(path, eval_settings, tmp_path / "out")
