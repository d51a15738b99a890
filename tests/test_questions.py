"""Question checks before any work: length limit, and echoing only the start."""

from __future__ import annotations

from rag.questions import question_problem, shorten
from tests.conftest import make_settings


def test_questions_up_to_the_limit_pass_and_longer_ones_are_refused(tmp_path):
    settings = make_settings(tmp_path, max_question_chars=50)
    assert question_problem("x" * 50, settings) is None
    problem = question_problem("why " * 5000, settings)
    assert problem.startswith("the question is 20,000 characters long; the limit is 50")
    assert len(problem) < 250 and "\n" not in problem


def test_shorten_keeps_the_start_and_marks_the_cut():
    assert shorten("short question") == "short question"
    cut = shorten("word " * 100, 40)
    assert len(cut) <= 40 and cut.endswith("…") and cut.startswith("word word")
    assert shorten("a\n\x1b[31mb", 40) == "a \x1b[31mb"  # whitespace folded (store strips ESC)
