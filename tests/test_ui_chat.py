"""The chat handler without a browser: turns, history, and friendly failures."""

from __future__ import annotations

import socket

import pytest

from rag.answer import Answerer
from ui.chat import EMPTY_CORPUS, ChatTab
from ui.options import session_options

QUESTION = "How can quantile regression models be aggregated?"


def options(llm: str = "extractive", endpoint: str = ""):
    return (5, llm, "", endpoint, "", None, None, "", "", True)


def final(tab: ChatTab, message: str, messages=None, turns=None, values=None):
    """Run one question through the handler; return its last update."""
    return list(tab.respond(message, messages or [], turns or [], *(values or options())))[-1]


def test_answers_accumulate_turns_and_number_chips_by_turn(seed_index, seed_settings):
    tab = ChatTab(seed_settings, seed_index)
    messages, sources, turns, prompt, copy, status = final(tab, QUESTION)
    assert len(turns) == 1 and 'data-turn="0"' in messages[-1]["content"]
    assert "cite-chip" in messages[-1]["content"] and 'id="src-0-1"' in sources
    assert copy.startswith(turns[0].answer.strip()[:30]) and "References" in copy
    assert status.startswith("answered by `extractive`")
    messages, sources, turns, *_ = final(
        tab, "And which uses conformal calibration?", messages, turns
    )
    assert len(turns) == 2 and len(messages) == 4
    assert 'data-turn="1"' in messages[-1]["content"]
    assert '<section class="turn-sources" data-turn="0" hidden>' in sources


def test_earlier_turns_are_passed_as_history(seed_index, seed_settings, monkeypatch):
    seen = []
    original = Answerer.stream

    def recording(self, question, history=None, filters=None):
        seen.append(list(history or []))
        return original(self, question, history, filters)

    monkeypatch.setattr(Answerer, "stream", recording)
    tab = ChatTab(seed_settings, seed_index)
    messages, _, turns, *_ = final(tab, QUESTION)
    final(tab, "Which of them is cheapest?", messages, turns)
    assert seen == [[], [turns[0]]]


def test_filters_from_settings_reach_the_answerer(seed_index, seed_settings, monkeypatch):
    seen = []
    monkeypatch.setattr(
        Answerer,
        "stream",
        lambda self, q, h=None, f=None: seen.append((self.settings.top_k, f)) or iter(()),
    )
    tab = ChatTab(seed_settings, seed_index)
    list(tab.respond(QUESTION, [], [], 3, "extractive", "", "", "", 2020, 0, "Lee", "cs.LG", False))
    ((top_k, filters),) = seen
    assert top_k == 3
    assert (filters.year_min, filters.year_max) == (2020, None)
    assert (filters.author, filters.category) == ("Lee", "cs.LG")
    assert session_options(*options()).filters() is None


def test_empty_corpus_is_a_friendly_message(empty_index, settings):
    messages, *_ = final(ChatTab(settings, empty_index), QUESTION)
    assert messages[-1]["content"] == EMPTY_CORPUS


def test_llm_down_is_a_friendly_message(seed_index, seed_settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    settings = seed_settings.model_copy(update={"llm_max_retries": 0})
    tab = ChatTab(settings, seed_index)
    messages, _, turns, *_ = final(
        tab, QUESTION, values=options("openai", f"http://127.0.0.1:{dead}/v1")
    )
    assert "language model is not available" in messages[-1]["content"]
    assert "cannot reach LLM endpoint" in messages[-1]["content"] and turns == []


def test_unexpected_failure_is_reported_and_the_handler_ends(
    seed_index, seed_settings, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Answerer, "stream", broken)
    messages, _, turns, *_ = final(ChatTab(seed_settings, seed_index), QUESTION)
    assert "RuntimeError: disk on fire" in messages[-1]["content"] and turns == []


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_question_adds_nothing(seed_index, seed_settings, blank):
    messages, _, turns, *_ = final(ChatTab(seed_settings, seed_index), blank)
    assert messages == [] and turns == []


def test_a_filter_excluding_every_paper_leaves_no_sources(seed_index, seed_settings):
    tab = ChatTab(seed_settings, seed_index)
    values = (5, "extractive", "", "", "", 2100, None, "", "", False)
    messages, sources, turns, *_ = final(tab, QUESTION, values=values)
    assert turns[0].sources == [] and turns[0].abstained
    assert "cite-chip" not in messages[-1]["content"] and "No sources cited" in sources
