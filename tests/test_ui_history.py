"""The conversations sidebar without a browser: a long chat is saved whole, reopened bounded."""

from __future__ import annotations

import gradio as gr

from rag.conversations import ConversationStore
from ui.chat import ChatTab, ChatTurns
from ui.history import HistoryPanel

OPTIONS = (5, "extractive", "", "", "", None, None, "", "", False)
QUESTIONS = [
    "How can quantile regression models be aggregated?",
    "Which papers propose datasets for scene text recognition in Indian languages?",
    "How does TokenUnify combine different token prediction objectives?",
    "How can quantile regression models be aggregated?",
]


def test_a_chat_longer_than_the_session_keeps_is_saved_whole_and_reopened(
    seed_index, seed_settings, tmp_path
):
    tab = ChatTab(seed_settings.model_copy(update={"ui_session_turns": 2}), seed_index)
    panel = HistoryPanel(ConversationStore(tmp_path / "conversations.sqlite"), keep=2)
    ann = gr.Request(username="ann")
    messages, turns, current = [], ChatTurns(), ""
    for question in QUESTIONS:  # saved after each answer, as the UI's .then does
        messages, _, turns, *_ = list(tab.respond(question, messages, turns, *OPTIONS))[-1]
        current, _, title = panel.save(turns, current, "", ann, *OPTIONS)
    assert len(turns.recent) == 2 and title == QUESTIONS[0]
    saved = panel.store.load("ann", current).turns
    assert [turn.question for turn in saved] == QUESTIONS  # every turn, once, in order
    chat, sources, reopened, _, status, opened, _, _ = panel.open(current, "", ann)
    assert opened == current and status.startswith("reopened")
    assert (reopened.count, len(reopened.recent)) == (4, 2)
    assert reopened.recent[-1].answer == saved[-1].answer
    assert len(chat) == 8 and 'data-turn="0"' in chat[1]["content"]  # all answers shown
    assert 'id="src-3-1"' in sources and "src-1-" not in sources and 'data-turn="older"' in sources
    assert [turn.question for turn in panel.saved_turns(current, ann)] == QUESTIONS
    assert panel.saved_turns(current, gr.Request(username="bob")) == []


def test_a_late_page_load_leaves_a_started_chat_alone(seed_index, seed_settings, tmp_path):
    """CI saw it: the load event reached a busy server after the question was sent, and
    its empty restore blanked the chat (or broke the answer's diff stream). A session
    that has asked keeps its chat; a fresh one gets only the list; a saved one reopens."""
    tab = ChatTab(seed_settings, seed_index)
    panel = HistoryPanel(ConversationStore(tmp_path / "conversations.sqlite"), keep=5)
    ann = gr.Request(username="ann")
    messages, _, turns, *_ = list(tab.respond(QUESTIONS[0], [], ChatTurns(), *OPTIONS))[-1]
    skip = type(gr.skip())
    late = panel.restore("", QUESTIONS[0], ann)
    assert len(late) == 8 and all(isinstance(value, skip) for value in late)
    current, _, _ = panel.save(turns, "", "", ann, *OPTIONS)
    fresh = panel.restore("", "", ann)
    assert all(isinstance(value, skip) for value in fresh[:7])
    assert current in str(fresh[7].choices)
    chat, _, reopened, _, status, opened, _, _ = panel.restore(current, "", ann)
    assert opened == current and status.startswith("reopened") and reopened.count == 1
    assert chat == messages
