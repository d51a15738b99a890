"""The chat handler without a browser: turns, history, and friendly failures."""

from __future__ import annotations

import pickle
import socket

import pytest
from openai_stub import StubLLM
from pydantic import SecretStr

import ui.chat
from rag.answer import Answerer
from ui.chat import EMPTY_CORPUS, ChatTab, ChatTurns
from ui.options import session_options

QUESTION = "How can quantile regression models be aggregated?"


def options(llm: str = "extractive", endpoint: str = ""):
    return (5, llm, "", endpoint, "", None, None, "", "", True)


def final(tab: ChatTab, message: str, messages=None, turns=None, values=None):
    """Run one question through the handler; return its last update."""
    turns = turns if turns is not None else ChatTurns()
    return list(tab.respond(message, messages or [], turns, *(values or options())))[-1]


def test_answers_accumulate_turns_and_number_chips_by_turn(seed_index, seed_settings):
    tab = ChatTab(seed_settings, seed_index)
    messages, sources, turns, prompt, copy, status = final(tab, QUESTION)
    assert turns.count == 1 and 'data-turn="0"' in messages[-1]["content"]
    assert "cite-chip" in messages[-1]["content"] and 'id="src-0-1"' in sources
    assert copy.startswith(turns.recent[0].answer.strip()[:30]) and "References" in copy
    assert status.startswith("answered by `extractive`")
    messages, sources, turns, *_ = final(
        tab, "And which uses conformal calibration?", messages, turns
    )
    assert turns.count == 2 and len(messages) == 4
    assert 'data-turn="1"' in messages[-1]["content"]
    assert '<section class="turn-sources" data-turn="0" hidden>' in sources


def test_the_next_answer_starts_with_the_panel_already_rendered(
    seed_index, seed_settings, monkeypatch
):
    """An answer's first update re-sends the sources panel of the turns before it;
    rendered when those turns were answered, it is not rendered again, and turns
    after it get their own."""
    rendered: list[ChatTurns] = []

    def counted(index, turns):
        rendered.append(turns)
        return real(index, turns)

    real = ui.chat.sources_panel
    monkeypatch.setattr(ui.chat, "sources_panel", counted)
    tab = ChatTab(seed_settings, seed_index)
    _, panel, turns, *_ = final(tab, QUESTION)
    assert rendered == [ChatTurns(), turns]  # the empty chat's panel, then the answer's
    updates = list(tab.respond("And which uses conformal calibration?", [], turns, *options()))
    assert updates[0][1] is panel and rendered.count(turns) == 1
    assert rendered[-1] is updates[-1][2] and 'data-turn="1"' in updates[-1][1]


def test_a_long_chat_keeps_a_bounded_session_state(seed_index, seed_settings):
    """The session keeps `ui_session_turns` full results however long the chat runs;
    turn numbers (chips, source cards) and the chat itself go on."""
    tab = ChatTab(seed_settings.model_copy(update={"ui_session_turns": 2}), seed_index)
    messages, turns, sizes = [], ChatTurns(), []
    for _ in range(6):  # one question again and again: every result has the same size
        messages, sources, turns, *_ = final(tab, QUESTION, messages, turns)
        sizes.append(len(pickle.dumps(turns)))
    assert sizes[1] > 1.8 * sizes[0]  # one result is what the state's size is made of
    assert max(sizes[2:]) < 1.05 * sizes[1]  # ... and it stays at two
    assert (turns.count, len(turns.recent), turns.first) == (6, 2, 4)
    assert len(messages) == 12 and 'data-turn="5"' in messages[-1]["content"]
    assert 'data-turn="0"' in messages[1]["content"]  # what the user saw stays
    assert 'id="src-4-1"' in sources and 'id="src-5-1"' in sources and "src-3-" not in sources
    assert '<section class="turn-sources" data-turn="older" hidden>' in sources


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
    assert seen == [[], [turns.recent[0]]]


def test_filters_from_settings_reach_the_answerer(seed_index, seed_settings, monkeypatch):
    seen = []
    monkeypatch.setattr(
        Answerer,
        "stream",
        lambda self, q, h=None, f=None: seen.append((self.settings.top_k, f)) or iter(()),
    )
    tab = ChatTab(seed_settings, seed_index)
    list(tab.respond(QUESTION, [], ChatTurns(), 3, "extractive", "", "", "", 2020, 0, "Lee", "cs.LG", False))
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
    settings = seed_settings.model_copy(
        update={"llm_max_retries": 0, "openai_base_url": f"http://127.0.0.1:{dead}/v1"}
    )
    tab = ChatTab(settings, seed_index)
    messages, _, turns, *_ = final(tab, QUESTION, values=options("openai"))
    assert "language model is not available" in messages[-1]["content"]
    assert "cannot reach LLM endpoint" in messages[-1]["content"] and turns == ChatTurns()


def test_unexpected_failure_is_reported_and_the_handler_ends(
    seed_index, seed_settings, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Answerer, "stream", broken)
    messages, _, turns, *_ = final(ChatTab(seed_settings, seed_index), QUESTION)
    assert "RuntimeError: disk on fire" in messages[-1]["content"] and turns == ChatTurns()


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_question_adds_nothing(seed_index, seed_settings, blank):
    messages, _, turns, *_ = final(ChatTab(seed_settings, seed_index), blank)
    assert messages == [] and turns == ChatTurns()


def test_a_filter_excluding_every_paper_leaves_no_sources(seed_index, seed_settings):
    tab = ChatTab(seed_settings, seed_index)
    values = (5, "extractive", "", "", "", 2100, None, "", "", False)
    messages, sources, turns, *_ = final(tab, QUESTION, values=values)
    assert turns.recent[0].sources == [] and turns.recent[0].abstained
    assert "cite-chip" not in messages[-1]["content"] and "No sources cited" in sources


def test_settings_tab_cannot_send_the_server_key_to_a_typed_url(seed_index, seed_settings):
    """The attack of issue 12: a session types its own endpoint; the server's key stays home."""
    with StubLLM(lambda m: "leak") as operator, StubLLM(lambda m: "leak") as attacker:
        settings = seed_settings.model_copy(update={
            "openai_base_url": operator.base_url, "openai_api_key": SecretStr("sk-server"),
            "openai_model": "stub-model", "llm_max_retries": 0,
        })  # fmt: skip
        tab = ChatTab(settings, seed_index)
        refused, *_ = final(tab, QUESTION, values=options("openai", attacker.base_url))
        assert "custom LLM endpoints are disabled" in refused[-1]["content"]
        allowed = settings.model_copy(update={"allow_custom_endpoints": True})
        loopback, *_ = final(
            ChatTab(allowed, seed_index), QUESTION,
            values=(5, "openai", "m", attacker.base_url, "sk-mine", None, None, "", "", False),
        )  # fmt: skip
        assert "non-public address (127.0.0.1)" in loopback[-1]["content"]
        assert "Refused" in loopback[-1]["content"]
    assert attacker.requests == [] and operator.requests == []


def test_a_cut_answer_shows_the_incomplete_banner(seed_index, seed_settings):
    reply = "Quantile regression models can be aggregated by averaging their quantiles [1]."
    with StubLLM(lambda m: reply, faults=["close-mid"]) as stub:
        settings = seed_settings.model_copy(update={
            "openai_base_url": stub.base_url, "openai_api_key": SecretStr("k"),
            "openai_model": "stub-model", "llm_max_retries": 0,
        })  # fmt: skip
        messages, _, turns, _, _, status = final(
            ChatTab(settings, seed_index), QUESTION, values=options("openai")
        )
    assert turns.count == 1 and not turns.recent[0].complete
    assert messages[-1]["content"].startswith('<div class="answer-incomplete" role="alert"')
    assert "incomplete" in status


def test_an_extractive_answer_is_sent_when_asked_and_when_answered_an_llm_streams(
    seed_index, seed_settings
):
    """Each update re-sends the whole chat. An extractive answer's stages and text come a
    fraction of a second before its result, so it is sent when the search starts (then
    only ticks if it lasts) and when answered; an LLM's answer shows its stages and
    streams its text."""
    statuses = [update[-1] for update in ChatTab(seed_settings, seed_index).respond(
        QUESTION, [], ChatTurns(), *options())]  # fmt: skip
    assert statuses[0] == "searching the papers…"
    assert statuses[-1].startswith("answered by `extractive`")
    assert all(status.startswith("searching the papers…") for status in statuses[1:-1])
    reply = "Quantile regression models can be aggregated by averaging their quantiles [1]."
    with StubLLM(lambda m: reply) as stub:
        settings = seed_settings.model_copy(update={
            "openai_base_url": stub.base_url, "openai_api_key": SecretStr("k"),
            "openai_model": "stub-model", "llm_max_retries": 0,
        })  # fmt: skip
        statuses = [update[-1] for update in ChatTab(settings, seed_index).respond(
            QUESTION, [], ChatTurns(), *options("openai"))]  # fmt: skip
    assert {"retrieving…", "reading the evidence…", "writing…"} <= set(statuses)
