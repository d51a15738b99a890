"""Saved conversations in a real SQLite file: per-user isolation, search, rename, delete."""

from __future__ import annotations

import threading

import pytest

from rag.answer import AnswerResult, SourceRecord
from rag.conversations import ConversationStore


def result(question: str, answer: str = "An answer [1].") -> AnswerResult:
    source = SourceRecord(n=1, paper_id="10.1000/x", title="Paper X", score=0.9, url="",
                          year=2020, authors="A. Author", abstract="Abstract X.", cited=True)  # fmt: skip
    return AnswerResult(
        question=question, answer=answer, citations=[], sources=[source], abstained=False,
        llm="extractive", timings_ms={"total": 1.0},
    )  # fmt: skip


@pytest.fixture
def store(tmp_path) -> ConversationStore:
    return ConversationStore.for_index(tmp_path / "index")


def test_turns_round_trip_with_sources_and_settings(store, tmp_path):
    turns = [result("What is X?")]
    cid = store.sync("alice", None, turns, {"top_k": 5, "llm": "extractive"})
    turns.append(result("And Y?", "Y is [1]."))
    assert store.sync("alice", cid, turns, {"top_k": 3}) == cid
    assert store.sync("alice", cid, turns, {"top_k": 3}) == cid  # nothing new: nothing written
    reopened = ConversationStore.for_index(tmp_path / "index").load("alice", cid)
    assert reopened.title == "What is X?"
    assert [turn.question for turn in reopened.turns] == ["What is X?", "And Y?"]
    assert reopened.turns[1].sources[0].abstract == "Abstract X." and reopened.turns[1].answer == "Y is [1]."
    assert reopened.settings == [{"top_k": 5, "llm": "extractive"}, {"top_k": 3}]


def test_users_never_see_or_touch_each_others_conversations(store):
    mine = store.sync("alice", None, [result("Alice's secret question")], {})
    theirs = store.sync("bob", None, [result("Bob's question")], {})
    assert [c.id for c in store.list("alice")] == [mine]
    assert [c.id for c in store.list("bob")] == [theirs]
    assert store.load("bob", mine) is None
    assert not store.rename("bob", mine, "hijacked") and not store.delete("bob", mine)
    assert not store.append("bob", mine, result("sneaky"), {})
    other = store.sync("bob", mine, [result("Bob continues?")], {})  # not his: a new one
    assert other != mine and len(store.load("alice", mine).turns) == 1
    assert store.list("bob", "secret") == []


def test_a_cleared_chat_starts_a_new_conversation(store):
    long = store.sync("u", None, [result("one"), result("two")], {})
    fresh = store.sync("u", long, [result("three")], {})
    assert fresh != long and [len(store.load("u", c).turns) for c in (long, fresh)] == [2, 1]


def test_a_sessions_latest_turns_extend_the_stored_conversation(store):
    """A UI session keeps only its latest turns: `first` says which turn they start at,
    so the stored conversation still gets every turn once, in order."""
    turns = [result(f"question {n}?") for n in range(5)]
    cid = store.sync("u", None, turns[:2], {})
    assert store.sync("u", cid, turns[1:3], {}, first=1) == cid  # turn 1 already stored
    assert store.sync("u", cid, turns[3:5], {}, first=3) == cid
    assert [t.question for t in store.load("u", cid).turns] == [t.question for t in turns]
    assert store.turn_count("u", cid) == 5 and store.title("u", cid) == "question 0?"
    assert store.turn_count("bob", cid) is None and store.title("bob", cid) is None
    fresh = store.sync("u", cid, turns[:1], {})  # a cleared chat (shorter than stored): new
    assert fresh != cid and store.turn_count("u", fresh) == 1


def test_search_rename_delete_and_latest_first(store):
    first = store.sync("u", None, [result("Glacier retreat radar?", "Radar [1].")], {})
    second = store.sync("u", None, [result("Coral bleaching?", "Heat stress 100% [1].")], {})
    assert [c.id for c in store.list("u")] == [second, first]
    assert [c.id for c in store.list("u", "RADAR")] == [first]  # answers and questions
    assert [c.id for c in store.list("u", "100%")] == [second]  # % is literal
    assert store.list("u", "_") == []
    assert store.rename("u", first, "  My   glaciers ") and store.list("u", "my glaciers")[0].id == first
    assert not store.rename("u", first, "   ")
    assert store.delete("u", first) and store.load("u", first) is None
    assert [(c.id, c.turns) for c in store.list("u")] == [(second, 1)]


def test_concurrent_writers_keep_every_turn(store):
    cids = [store.create("u", f"conversation {n}") for n in range(3)] * 2  # two writers each

    def write(cid: str) -> None:
        for n in range(10):
            assert store.append("u", cid, result(f"q{n}"), {})

    threads = [threading.Thread(target=write, args=(cid,)) for cid in cids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [len(store.load("u", cid).turns) for cid in cids[:3]] == [20] * 3
    assert [t.question for t in store.load("u", cids[0]).turns].count("q9") == 2


def test_browser_secret_is_stable(store, tmp_path):
    assert store.secret() == ConversationStore.for_index(tmp_path / "index").secret()
