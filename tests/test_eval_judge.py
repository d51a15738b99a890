"""LLM judge against a stub OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from eval.harness import run_eval
from eval.judge import Judge, judge_enabled, parse_score
from rag.settings import PROJECT_ROOT


def _stub_server(replies):
    """Streams the next reply of `replies` for every chat completion request."""
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "stub",
                     "choices": [{"index": 0, "delta": {"content": next(replies)},
                                  "finish_reason": None}]}  # fmt: skip
            body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


@pytest.fixture
def stub():
    server, requests = _stub_server(itertools.cycle(["Score: 5", "score: 3", "Score 4", "oops"]))
    yield f"http://127.0.0.1:{server.server_port}/v1", requests
    server.shutdown()


def test_parse_score_maps_one_to_five_onto_zero_to_one():
    assert parse_score("Score: 5") == 1.0
    assert parse_score("score = 1") == 0.0
    assert parse_score("The answer is fine. Score: 4") == 0.75
    assert parse_score("no grade here") is None


def test_judge_runs_only_with_an_endpoint(settings):
    assert not judge_enabled(settings)
    assert judge_enabled(settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1"}))
    off = settings.model_copy(update={"openai_base_url": "http://x/v1", "eval_judge_repeats": 0})
    assert not judge_enabled(off)


def test_judge_repeats_and_reports_mean_and_spread(settings, stub):
    base_url, requests = stub
    configured = settings.model_copy(update={"openai_base_url": base_url, "eval_judge_repeats": 4})
    judge = Judge(configured)
    verdict = judge.grade("How many?", "42 things", "42 things [1]")
    assert verdict.scores == (1.0, 0.5, 0.75)  # the fourth reply had no score
    assert verdict.mean == pytest.approx(0.75)
    assert verdict.spread == pytest.approx((2 * 0.25**2 / 3) ** 0.5)
    assert len(requests) == 4 and requests[0]["temperature"] == 0.7
    assert "42 things [1]" in requests[0]["messages"][0]["content"]


def test_harness_adds_judge_scores_when_an_endpoint_is_configured(
    seed_index, seed_settings, stub, tmp_path
):
    base_url, _ = stub
    suite = tmp_path / "two.jsonl"
    lines = (PROJECT_ROOT / "eval" / "suites" / "ci_small.jsonl").read_text().splitlines()
    suite.write_text("\n".join(line for line in lines if '"seed-fact-01"' in line or
                               '"seed-unan-01"' in line) + "\n")  # fmt: skip
    settings = seed_settings.model_copy(update={
        "llm": "extractive", "openai_base_url": base_url, "eval_judge_repeats": 3,
        "eval_cache_dir": tmp_path / "cache"})  # fmt: skip
    report = run_eval(suite, settings, tmp_path / "out")
    assert report.metrics["judge_score"] == pytest.approx(0.75)
    assert report.metrics["judge_spread"] == pytest.approx((2 * 0.25**2 / 3) ** 0.5)
    assert "judge_score" not in report.by_type["unanswerable"]
    assert set(report.meta["prompt_hashes"]) == {"answer", "system", "judge"}
