"""Nobody stalls everyone: slots, visible waits, cancellation (chat handler and real app)."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from openai_stub import StubLLM
from pydantic import SecretStr

from ui.app import share_cores
from ui.chat import ChatTab, ChatTurns
from ui.limits import AnswerGate, Slots, Waiting, answer_threads

QUESTION = "How can quantile regression models be aggregated?"
EXTRACTIVE = (5, "extractive", "", "", "", None, None, "", "", False)
LLM = (5, "openai", "", "", "", None, None, "", "", False)


def test_slots_cap_the_total_and_each_owner():
    slots = Slots(total=2, per_owner=1)
    assert slots.try_acquire("a", 0) and not slots.try_acquire("a", 0.05)
    assert slots.try_acquire("b", 0) and not slots.try_acquire("c", 0.05)
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.try_acquire("c", 5)))
    waiter.start()
    time.sleep(0.1)
    slots.release("a")
    waiter.join(timeout=5)
    assert got == [True] and slots.in_use() == 2


def test_slots_go_to_waiters_in_the_order_they_came():
    """A waiter keeps its place across the ticks it wakes for (as AnswerGate's status
    updates do), so later arrivals never overtake it."""
    slots = Slots(total=1, per_owner=1)
    assert slots.try_acquire("holder", 0)
    served: list[str] = []

    def waiter(name: str) -> None:
        with slots.queued(name) as wait:
            for _ in range(2000):  # ~20 s at most
                if wait(0.01):
                    break
        served.append(name)
        time.sleep(0.02)
        slots.release(name)

    users = []
    for name in ("a", "b", "c", "d"):
        users.append(threading.Thread(target=waiter, args=(name,)))
        users[-1].start()
        for _ in range(500):  # until it stands in line
            if slots.waiting == len(users):
                break
            time.sleep(0.01)
    assert slots.waiting == 4 and not slots.try_acquire("late", 0.05)
    slots.release("holder")
    for user in users:
        user.join(timeout=20)
    assert served == ["a", "b", "c", "d"] and slots.in_use() == 0 and slots.waiting == 0


def test_a_waiter_held_back_by_its_own_limit_does_not_block_the_line():
    slots = Slots(total=2, per_owner=1)
    assert slots.try_acquire("a", 0)
    with slots.queued("a") as wait:  # a's second answer: a already holds its one slot
        assert not wait(0.01)
        assert slots.try_acquire("b", 0)  # the free slot goes to b, who is behind a


def test_a_wait_for_a_slot_is_shown_with_elapsed_time(seed_settings):
    gate = AnswerGate(seed_settings.model_copy(update={"llm_concurrency": 1}), tick_s=0.2)
    assert gate.llm.try_acquire("someone-else", 0)
    shown = []
    for item in gate.run(lambda: iter(["done"]), True, "me"):
        shown.append(item)
        if len(shown) == 3:
            gate.llm.release("someone-else")
    assert isinstance(shown[0], Waiting) and shown[0].status.startswith("waiting for an LLM slot")
    assert shown[-1] == "done" and gate.llm.in_use() == 0


def test_waiting_for_the_first_token_is_shown(seed_settings):
    gate = AnswerGate(seed_settings, tick_s=0.1)

    def slow():
        time.sleep(0.35)
        yield "text"

    items = list(gate.run(slow, True, "me"))
    assert items[-1] == "text"
    assert [item.status[:30] for item in items[:-1]][0] == "waiting for the language model"


def llm_settings(settings, stub, **overrides):
    return settings.model_copy(update={
        "openai_base_url": stub.base_url, "openai_api_key": SecretStr("k"),
        "openai_model": "stub-model", "llm_max_retries": 0, **overrides,
    })  # fmt: skip


def timed_answer(tab: ChatTab, values, owner: str, out: dict) -> None:
    started = time.monotonic()
    last = None
    for last in tab.respond(QUESTION, [], ChatTurns(), *values, owner=owner):
        pass
    out[owner] = (time.monotonic() - started, last)


def test_a_slow_endpoint_does_not_delay_another_users_extractive_answer(
    seed_index, seed_settings
):
    with StubLLM(lambda m: "Averaging quantiles [1].", delay_s=60) as stub:
        tab = ChatTab(llm_settings(seed_settings, stub, llm_first_token_s=60), seed_index)
        alone: dict = {}
        timed_answer(tab, EXTRACTIVE, "b-alone", alone)
        busy: dict = {}
        users = [threading.Thread(target=timed_answer, args=(tab, LLM, f"a{i}", busy))
                 for i in range(3)]  # more slow LLM answers than there are LLM slots
        for user in users:
            user.start()
        deadline = time.monotonic() + 20
        while len(stub.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tab.gate.llm.in_use() == 2  # both LLM slots held by the hung endpoint
        timed_answer(tab, EXTRACTIVE, "b", busy)
        assert busy["b"][0] - alone["b-alone"][0] < 2.0
        assert busy["b"][1][2].recent and busy["b"][1][2].recent[0].llm == "extractive"
        stub.closing.set()  # the endpoint answers at last; the LLM users finish
        for user in users:
            user.join(timeout=60)
    assert tab.gate.llm.in_use() == 0


def test_a_hung_endpoint_is_reported_at_the_first_token_deadline(seed_index, seed_settings):
    with StubLLM(lambda m: "never", faults=["hang"]) as stub:
        tab = ChatTab(llm_settings(seed_settings, stub, llm_first_token_s=2.0), seed_index)
        started = time.monotonic()
        updates = list(tab.respond(QUESTION, [], ChatTurns(), *LLM))
        elapsed = time.monotonic() - started
    statuses = [update[5] for update in updates]
    assert any(str(status).startswith("waiting for the language model") for status in statuses)
    assert "timed out" in updates[-1][0][-1]["content"] and elapsed < 15
    assert tab.gate.llm.in_use() == 0


def test_closing_the_handler_stops_the_llm_call_and_frees_the_slot(seed_index, seed_settings):
    """What Gradio does on Stop or when the user leaves: close the generator."""
    with StubLLM(lambda m: "word " * 300, word_delay_s=0.05) as stub:
        tab = ChatTab(llm_settings(seed_settings, stub), seed_index)
        handler = tab.respond(QUESTION, [], ChatTurns(), *LLM)
        for update in handler:
            if update[5] == "writing…":
                break
        handler.close()
        deadline = time.monotonic() + 10
        while (tab.gate.llm.in_use() or not stub.disconnects) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert tab.gate.llm.in_use() == 0 and stub.disconnects == 1


@pytest.mark.parametrize("length", [2001, 20_000])
def test_overlong_questions_are_refused_without_echoing_them(seed_index, seed_settings, length):
    question = "why " * (length // 4 + 1)
    tab = ChatTab(seed_settings, seed_index)
    messages, _, turns, *_ = list(tab.respond(question, [], ChatTurns(), *EXTRACTIVE))[-1]
    assert turns == ChatTurns() and "the limit is 2,000" in messages[-1]["content"]
    assert len(messages[0]["content"]) <= 130


def test_answers_at_once_share_the_cores():
    assert [answer_threads(2, n) for n in (1, 2, 3)] == [2, 1, 1]
    assert answer_threads(8, 2) == 4 and answer_threads(1, 0) == 1


def test_the_chat_server_sets_each_answers_share_of_the_cores(seed_settings):
    before = torch.get_num_threads()
    try:
        settings = seed_settings.model_copy(update={"ui_concurrency": 64})
        assert share_cores(settings) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
