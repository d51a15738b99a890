"""The `rag` command's contract: names, JSON shapes, batch files, and one-line errors."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main
from rag.papers import title_id

# Hand-written questions in other words than the titles, each with the one paper that answers it.
SEED_QUESTIONS = {
    "How can spiking networks be trained to answer in a single time step?":
        "One Timestep is All You Need: Training Spiking Neural Networks with Ultra Low Latency",
    "Is evolving network weights with genetic algorithms competitive for reinforcement learning?":
        "Deep Neuroevolution: Genetic Algorithms Are a Competitive Alternative for Training Deep "
        "Neural Networks for Reinforcement Learning",
    "Why do large minibatches hurt generalization and how many more updates fix it?":
        "Train longer, generalize better: closing the generalization gap in large batch training "
        "of neural networks",
    "A neural architecture that outputs positions in its input sequence, e.g. for convex hulls":
        "Pointer Networks",
    "Dataset for recognising text in natural images written in Indian scripts":
        "IndicSTR12: A Dataset for Indic Scene Text Recognition",
}  # fmt: skip


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def index_dir(seed_index) -> str:
    return str(seed_index.settings.index)


@pytest.mark.parametrize("question", list(SEED_QUESTIONS))
def test_retrieve_finds_the_paper_in_the_top_3(capsys, index_dir, question):
    code, out, _ = run(capsys, "retrieve", question, "-k", "3", "--json", "--index", index_dir)
    assert code == 0
    rows = json.loads(out)
    assert [row["rank"] for row in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"id", "title", "score", "snippet"}
    assert title_id(SEED_QUESTIONS[question]) in [row["id"] for row in rows]


def test_stats_json(capsys, index_dir):
    code, out, _ = run(capsys, "stats", "--json", "--index", index_dir)
    stats = json.loads(out)
    assert code == 0
    assert stats["papers"] == 273 and stats["chunks"] >= 273
    assert stats["index"] == index_dir
    assert "all-MiniLM-L6-v2" in stats["embedder"]


def test_index_from_environment(capsys, index_dir, monkeypatch):
    monkeypatch.setenv("RAG_INDEX", index_dir)
    code, out, _ = run(capsys, "stats", "--json")
    assert code == 0 and json.loads(out)["papers"] == 273


def test_ask_json_shape_extractive(capsys, index_dir):
    question = "How does TokenUnify combine different token prediction objectives?"
    code, out, _ = run(capsys, "ask", question, "--llm", "extractive", "--json", "--index", index_dir)
    answer = json.loads(out)
    assert code == 0
    assert set(answer) >= {"question", "answer", "citations", "sources", "abstained", "llm", "timings_ms"}
    assert answer["llm"] == "extractive" and not answer["abstained"]
    assert {c["paper_id"] for c in answer["citations"]} <= {s["paper_id"] for s in answer["sources"]}
    assert answer["citations"][0]["n"] == 1 and "[1]" in answer["answer"]
    tokenunify = title_id(
        "TokenUnify: Scalable Autoregressive Visual Pre-training with Mixture Token Prediction"
    )
    assert answer["citations"][0]["paper_id"] == tokenunify
    assert set(answer["sources"][0]) >= {"n", "paper_id", "title", "score", "url"}


def test_batch_retrieve_writes_trec_run(capsys, index_dir, tmp_path):
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "\n".join(json.dumps({"_id": f"q{i}", "text": q}) for i, q in enumerate(SEED_QUESTIONS))
    )
    run_file = tmp_path / "run.txt"
    code, _, _ = run(capsys, "retrieve", "--queries", str(queries), "-k", "10",
                     "--run-out", str(run_file), "--index", index_dir)  # fmt: skip
    lines = [line.split() for line in run_file.read_text().splitlines()]
    assert code == 0 and len(lines) == 10 * len(SEED_QUESTIONS)
    assert all(len(parts) == 6 and parts[1] == "Q0" for parts in lines)
    first = [parts for parts in lines if parts[0] == "q0"]
    assert [int(parts[3]) for parts in first] == list(range(1, 11))
    scores = [float(parts[4]) for parts in first]
    assert scores == sorted(scores, reverse=True)


def test_batch_ask_writes_answers_with_ids(capsys, index_dir, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "question": "What is population based training?"}) + "\n"
        + json.dumps({"id": "b", "question": "Best sourdough bread recipe with rye flour?"}) + "\n"
    )
    out_file = tmp_path / "answers.jsonl"
    code, _, _ = run(capsys, "ask", "--questions", str(questions), "--out", str(out_file),
                     "--llm", "extractive", "--index", index_dir)  # fmt: skip
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert code == 0 and [row["id"] for row in rows] == ["a", "b"]
    assert not rows[0]["abstained"] and rows[1]["abstained"]


def test_ingest_summary_and_bad_input(capsys, tmp_path):
    index = str(tmp_path / "idx")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "g1", "title": "Good", "abstract": "A fine abstract about graphs."}))
    code, out, err = run(capsys, "ingest", str(good), "--index", index)
    assert code == 0 and "added 1" in out and "total 1 papers" in out and err == ""
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text('{"id": "t1", "title": "Cut off", "abstr')
    code, out, err = run(capsys, "ingest", str(truncated), "--index", index)
    assert code == 1 and "total 1 papers" in out
    assert err.count("\n") == 1 and err.startswith("error: ") and "line(s) 1" in err


def test_usage_errors_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "retrieve", "--queries", str(tmp_path / "q.jsonl"), "--index", str(tmp_path))
    assert code == 1 and err == "error: --queries needs --run-out RUN.txt\n"
    code, _, err = run(capsys, "ask", "--index", str(tmp_path))
    assert code == 1 and err.startswith("error: give a QUESTION")


def test_bad_input_from_a_real_process_has_no_traceback(tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    env = {**os.environ, "RAG_INDEX": str(tmp_path / "idx")}
    process = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ingest", str(blob), str(tmp_path / "nope.csv")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {tmp_path / 'nope.csv'}: no such file or directory",
        f"error: {blob}: binary file, not a supported format (PDF, JSONL, CSV, text)",
    ]


def test_control_characters_never_reach_the_terminal(capsys, tmp_path):
    evil = tmp_path / "evil\x1b[2J\x1b]0;pwned\x07.jsonl"
    evil.write_text(json.dumps({"id": "e\x1b[31m1", "title": "Red\x1b[31m title",
                                "abstract": "An abstract about colours in terminals."}) + "\n")  # fmt: skip
    code, out, err = run(capsys, "ingest", str(evil), str(tmp_path / "gone\x1b[2J.csv"),
                         "--index", str(tmp_path / "index"))  # fmt: skip
    assert code == 1 and "added 1" in out
    assert "error: " in err and "gone[2J.csv: no such file" in err
    code, out, _ = run(capsys, "retrieve", "colours in terminals", "--index", str(tmp_path / "index"))
    assert code == 0 and "Red[31m title  (e[31m1)" in out
    assert "\x1b" not in out + err and "\x07" not in out + err


def test_top_k_above_its_limit_is_one_error_line(capsys, tmp_path):
    code, out, err = run(capsys, "retrieve", "x", "-k", "5000", "--index", str(tmp_path / "i"))
    assert (code, out) == (1, "")
    assert err == "error: top_k 5000 is outside 1..1000 (setting max_top_k)\n"


def test_ask_reports_a_partial_answer_and_fails(capsys, index_dir, monkeypatch):
    from openai_stub import StubLLM

    reply = "Pointer networks output positions in the input sequence [1]."
    with StubLLM(lambda messages: reply, faults=["chunked-cut"]) as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "0")
        code, out, err = run(capsys, "ask", "What do Pointer Networks output?",
                             "--llm", "openai", "--json", "--index", index_dir)  # fmt: skip
    result = json.loads(out)
    assert code == 1 and result["complete"] is False and result["answer"]
    assert "error: partial answer" in err


def test_ask_refuses_an_overlong_question_without_echoing_it(capsys, index_dir):
    code, out, err = run(capsys, "ask", "why " * 5000, "--index", index_dir)
    assert code == 1 and out == ""
    assert err.startswith("error: the question is 20,000 characters long; the limit is 2,000")
    assert len(err) < 300


def test_help_needs_no_settings_or_stage_imports():
    """`rag --help` stays far below 0.5 s (docs/BENCHMARKS.md, "Cold start") because building
    the parser imports neither the settings (pydantic, httpx) nor any stage; a bad setting
    is still one error line, reported once a command runs."""
    heavy = ("pydantic", "rag.settings", "httpx2", "chromadb", "llama_index.core", "torch")
    code = (f"import sys, rag.cli; rag.cli.build_parser(); "
            f"print([name for name in {heavy!r} if name in sys.modules])")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    bad = subprocess.run([sys.executable, "-m", "rag.cli", "stats"], capture_output=True,
                         text=True, env={**os.environ, "RAG_TOP_K": "0"})  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_ingest_logs_plain_progress_lines_when_stderr_is_no_terminal(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("rag.cli.PROGRESS_LINE_S", 0.0)  # a line per batch, not every 10 s
    monkeypatch.setenv("RAG_INGEST_BATCH_PAPERS", "1")
    data = tmp_path / "three.jsonl"
    data.write_text("".join(
        json.dumps({"id": f"p{i}", "title": f"Paper {i}", "abstract": f"Abstract number {i}."}) + "\n"
        for i in range(3)
    ))  # fmt: skip
    code, out, err = run(capsys, "ingest", str(data), "--index", str(tmp_path / "idx"))
    assert code == 0 and "added 3" in out and "\r" not in err  # no bar redraws in a log
    lines = err.splitlines()
    assert re.fullmatch(r"  [12]/3 papers, [0-9.]+/s, ETA \d+m \d\ds", lines[0])
    assert re.fullmatch(r"  3/3 papers, [0-9.]+/s", lines[-1])
