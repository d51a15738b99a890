"""Saved conversations in the UI: a sidebar to reopen, rename, delete and search them.

Every answered turn is written to the ConversationStore under the logged-in
user (`gr.Request.username`; the shared anonymous user when logins are off).
The browser remembers which conversation is open (gr.BrowserState, encrypted
in localStorage), so a reload puts it back; the store only hands a
conversation to the user who owns it, whatever id the browser sends.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import gradio as gr

from rag.answer import AnswerResult
from rag.conversations import ANONYMOUS, ConversationStore, ConversationSummary
from rag.index import PaperIndex
from rag.render import answer_html, chat_sources_html, plain_text
from ui.chat import ChatTurns
from ui.options import session_options
from ui.pdfview import sources_panel

if TYPE_CHECKING:
    from ui.chat import ChatTab
    from ui.options import OptionsTab

NO_SELECTION = "Pick a conversation in the list first."
CONVERSATION_OUTPUTS = 7
"""What opening a conversation sets: chatbot, sources, turns, copy text, status, current id,
title (`HistoryPanel._open`, and the `conversation` outputs in `wire`)."""


def user_of(request: gr.Request | None) -> str:
    """Who is asking: the login name, or the shared anonymous user without logins."""
    return (getattr(request, "username", None) or ANONYMOUS) if request is not None else ANONYMOUS


def chat_messages(turns: list[AnswerResult]) -> list[dict[str, str]]:
    """The chatbot's messages for saved turns, rendered as when they were answered."""
    messages = []
    for number, turn in enumerate(turns):
        messages += [
            {"role": "user", "content": turn.question},
            {"role": "assistant", "content": answer_html(turn, number)},
        ]
    return messages


def list_label(summary: ConversationSummary) -> str:
    when = time.strftime("%d %b %H:%M", time.localtime(summary.updated))
    return f"{summary.title} · {summary.turns} answer(s) · {when}"


def saved_settings(values: tuple) -> dict[str, Any]:
    """The session's options for a turn, minus the API key (never stored)."""
    options = asdict(session_options(*values))
    options.pop("api_key", None)
    return options


class HistoryPanel:
    def __init__(self, store: ConversationStore, keep: int, index: PaperIndex | None = None):
        self.store = store
        self.keep = keep  # full results a session keeps (settings.ui_session_turns)
        self.index = index  # to offer "Open PDF" on reopened sources

    def build(self) -> None:
        self.current = gr.BrowserState(
            "", storage_key="rag-current-conversation", secret=self.store.secret()
        )
        with gr.Sidebar(label="Conversations", open=True, elem_id="history-sidebar"):
            gr.Markdown("#### Conversations")
            self.search = gr.Textbox(
                placeholder="Search titles, questions, answers…", show_label=False,
                elem_id="history-search",
            )  # fmt: skip
            self.choices = gr.Radio(
                [], label="Saved (latest first)", elem_id="history-list", type="value"
            )
            self.title = gr.Textbox(label="Title", elem_id="history-title")
            with gr.Row():
                self.rename = gr.Button("Rename", size="sm", elem_id="history-rename")
                self.delete = gr.Button("Delete", size="sm", variant="stop", elem_id="history-delete")
            with gr.Row(visible=False) as confirm_row:
                self.confirm = gr.Button(
                    "Yes, delete it", size="sm", variant="stop", elem_id="history-confirm"
                )
                self.cancel = gr.Button("Cancel", size="sm", elem_id="history-cancel")
            self.confirm_row = confirm_row
            self.message = gr.Markdown("", elem_id="history-message")

    # --- handlers -------------------------------------------------------------------------
    def listing(self, user: str, query: str = "", selected: str | None = None):
        summaries = self.store.list(user, query or "")
        choices = [(list_label(summary), summary.id) for summary in summaries]
        keep = selected if any(summary.id == selected for summary in summaries) else None
        return gr.Radio(choices=choices, value=keep)

    @staticmethod
    def _unchanged() -> tuple:
        """`_open`'s outputs left as the browser shows them."""
        return (gr.skip(),) * CONVERSATION_OUTPUTS

    def _open(self, user: str, conversation_id: str | None):
        """(chatbot, sources, turns, copy text, status, current id, title) for a conversation."""
        conversation = self.store.load(user, conversation_id) if conversation_id else None
        if conversation is None:
            return [], chat_sources_html([]), ChatTurns(), "", "", "", ""
        saved = conversation.turns  # every answer is shown; the session keeps the latest
        turns = ChatTurns.of(saved, self.keep)
        sources = (
            sources_panel(self.index, turns) if self.index
            else chat_sources_html(turns.recent, turns.first)
        )  # fmt: skip
        return (
            chat_messages(saved), sources, turns,
            plain_text(saved[-1]) if saved else "", f"reopened “{conversation.title}”",
            conversation.id, conversation.title,
        )  # fmt: skip

    def restore(self, current: str, asked: str, request: gr.Request):
        """Page load: the conversation this browser had open, and the user's list.

        The load event can reach a busy server after the user has already asked (the
        question box works at once). Writing the chat then would blank it, or, while the
        answer streams, break the stream: Gradio sends each streamed update as a diff
        against the previous one, which no longer matches what the browser shows. So a
        session that has asked keeps its chat (the answer's save refreshes the list), and
        with no conversation to reopen only the list is sent."""
        if asked:
            return (*self._unchanged(), gr.skip())
        if not current:
            return (*self._unchanged(), self.listing(user_of(request)))
        user = user_of(request)
        opened = self._open(user, current)
        return (*opened, self.listing(user, selected=opened[5]))

    def open(self, conversation_id: str, query: str, request: gr.Request):
        user = user_of(request)
        opened = self._open(user, conversation_id)
        return (*opened, self.listing(user, query, opened[5]))

    def save(self, turns: ChatTurns, current: str, query: str, request: gr.Request, *values):
        """After an answer: store the turns the database does not have yet (values: the
        Settings tab's options, saved with each turn)."""
        user = user_of(request)
        if not turns.recent:
            return current, gr.skip(), gr.skip()
        current = self.store.sync(
            user, current, list(turns.recent), saved_settings(values), first=turns.first
        )
        return current, self.listing(user, query, current), self.store.title(user, current)

    def saved_turns(self, conversation_id: str, request: gr.Request) -> list[AnswerResult]:
        """Every stored turn of the user's conversation (none when it is not theirs)."""
        if not conversation_id:
            return []
        conversation = self.store.load(user_of(request), conversation_id)
        return conversation.turns if conversation else []

    def search_list(self, query: str, current: str, request: gr.Request):
        return self.listing(user_of(request), query, current)

    def do_rename(self, conversation_id: str | None, title: str, query: str, request: gr.Request):
        user = user_of(request)
        if not conversation_id:
            return gr.skip(), NO_SELECTION
        if not self.store.rename(user, conversation_id, title or ""):
            return gr.skip(), "Give the conversation a non-empty title."
        return self.listing(user, query, conversation_id), "Renamed."

    def do_delete(self, conversation_id: str | None, current: str, query: str, request: gr.Request):
        """Delete the picked conversation; if it is the open one, the chat starts afresh."""
        user = user_of(request)
        deleted = bool(conversation_id) and self.store.delete(user, conversation_id)
        message = "Deleted." if deleted else NO_SELECTION
        cleared = self._open(user, None) if deleted and conversation_id == current else None
        chat_updates = cleared if cleared else self._unchanged()
        return (*chat_updates, self.listing(user, query), message, gr.Row(visible=False))

    # --- wiring ---------------------------------------------------------------------------
    def wire(self, app: gr.Blocks, chat: ChatTab, options: OptionsTab) -> None:
        conversation = [chat.chatbot, chat.sources, chat.turns, chat.copy_text, chat.status,
                        self.current, self.title]  # fmt: skip
        app.load(self.restore, [self.current, chat.asked], [*conversation, self.choices])
        chat.export.wire(chat.turns, self.current, self.saved_turns)
        self.choices.input(self.open, [self.choices, self.search], [*conversation, self.choices])
        chat.answered.then(
            self.save, [chat.turns, self.current, self.search, *options.components],
            [self.current, self.choices, self.title],
        )  # fmt: skip
        chat.new_chat.click(lambda: ("", None, ""), None, [self.current, self.choices, self.title])
        self.search.change(self.search_list, [self.search, self.current], self.choices)
        self.rename.click(
            self.do_rename, [self.choices, self.title, self.search], [self.choices, self.message]
        )
        self.delete.click(
            lambda picked: (gr.Row(visible=bool(picked)), "" if picked else NO_SELECTION),
            self.choices, [self.confirm_row, self.message],
        )  # fmt: skip
        self.cancel.click(lambda: gr.Row(visible=False), None, self.confirm_row)
        self.confirm.click(
            self.do_delete, [self.choices, self.current, self.search],
            [*conversation, self.choices, self.message, self.confirm_row],
        )  # fmt: skip
