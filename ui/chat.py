"""The Chat tab: streamed, cited answers, a sources panel, multi-turn follow-ups.

Each browser session keeps its latest turns (gr.State, a `ChatTurns`); every
question is answered with that session's options and those turns as history.
Any failure becomes a friendly message in the chat: the app keeps serving.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from rag.answer import Answerer, AnswerResult, Stage
from rag.endpoints import EndpointRefused
from rag.index import PaperIndex
from rag.llm import LLMError
from rag.local_llm import LocalLLMError
from rag.questions import question_problem, shorten
from rag.render import answer_html, chat_sources_html, escape_text, plain_text
from rag.settings import Settings
from ui.assets import COPY_JS
from ui.export import ExportPanel
from ui.limits import AnswerGate, Waiting
from ui.notices import FilterNotice
from ui.options import OptionsTab, session_options
from ui.pdfview import sources_panel
from ui.progress import with_banner

log = logging.getLogger(__name__)

EXAMPLES = [
    "How does TokenUnify combine different token prediction objectives?",
    "Which papers propose datasets for scene text recognition in Indian languages?",
    "How can quantile regression models be aggregated?",
]
EMPTY_CORPUS = "The corpus is empty: add papers in the **Corpus** tab first."
_LOG_LOCK = threading.Lock()
PANEL_CACHE = 64
"""Chats whose latest sources panel stays rendered (ChatTab.panel); more active chats
than this only means some panels are rendered twice."""


@dataclass(frozen=True)
class ChatTurns:
    """A chat's answered turns as its session keeps them: only the latest full results.

    Each full result carries its sources' abstracts and sentences; a session that kept
    them all grew the server by every answer of every long chat (docs/RELIABILITY.md).
    `count` numbers every turn of the chat, so chip and source-card ids stay stable when
    old results are dropped; the dropped turns live on in the chat's messages and in the
    conversation store.
    """

    recent: tuple[AnswerResult, ...] = ()
    count: int = 0  # turns answered in this chat, including those no longer kept

    @property
    def first(self) -> int:
        """The number of the oldest turn kept."""
        return self.count - len(self.recent)

    def add(self, result: AnswerResult, keep: int) -> ChatTurns:
        return ChatTurns((*self.recent, result)[-max(1, keep) :], self.count + 1)

    @classmethod
    def of(cls, results: Sequence[AnswerResult], keep: int) -> ChatTurns:
        """A reopened conversation: its latest `keep` results, numbered as saved."""
        return cls(tuple(results[-max(1, keep) :]), len(results))


def log_answer(path: Path, record: dict) -> None:
    """One JSON line per answer (settings.ui_answer_log): where its time went."""
    line = json.dumps(record) + "\n"
    with _LOG_LOCK, open(path, "a", encoding="utf-8") as out:
        out.write(line)


def llm_down_message(exc: Exception) -> str:
    return (
        f"**Problem:** The language model is not available ({' '.join(str(exc).split())}). "
        "Pick another answer generator in **Settings** (extractive always works), "
        "or check the endpoint."
    )


def status_line(result: AnswerResult) -> str:
    cited = sum(source.cited for source in result.sources)
    total = result.timings_ms.get("total", 0) / 1000
    searched = getattr(result, "query", "")
    rewritten = f" · searched for “{searched}”" if searched and searched != result.question else ""
    return (
        f"answered by `{result.llm}` in {total:.1f} s · {cited} cited of "
        f"{len(result.sources)} retrieved{' · abstained' if result.abstained else ''}"
        f"{'' if result.complete else ' · **incomplete**'}{rewritten}"
    )


class ChatTab:
    def __init__(self, settings: Settings, index: PaperIndex):
        self.settings = settings
        self.index = index
        self.gate = AnswerGate(settings)  # LLM and extractive slots, shared by all sessions
        self._panels: OrderedDict[str, tuple[ChatTurns, str]] = OrderedDict()
        self._panels_lock = threading.Lock()

    def build(self) -> None:
        with gr.Row():
            with gr.Column(scale=3):
                self.chatbot = gr.Chatbot(
                    height=560, label="Chat", sanitize_html=False, elem_id="chat", buttons=[],
                    placeholder="Ask about the indexed papers; follow-ups keep the context.",
                )  # fmt: skip
                with gr.Row():
                    self.question = gr.Textbox(
                        placeholder="Ask a question about the papers…", show_label=False,
                        scale=5, elem_id="question", submit_btn=True,
                    )  # fmt: skip
                with gr.Row():
                    self.new_chat = gr.Button("New chat", size="sm", elem_id="new-chat")
                    self.copy = gr.Button("Copy answer", size="sm", elem_id="copy-answer")
                    self.stop = gr.Button("Stop", size="sm", elem_id="stop-answer")
                self.status = gr.Markdown("", elem_id="answer-status")
                self.filter_notice = FilterNotice(self.index)
                self.filter_notice.build()
                self.export = ExportPanel(self.settings, self.index)
                self.export.build()
                gr.Examples(EXAMPLES, inputs=self.question, label="Example questions")
                self.copy_text = gr.Textbox(visible=False)
                with gr.Accordion("Prompt actually sent", open=False, visible=False) as prompt_box:
                    self.prompt = gr.JSON(label="messages", elem_id="prompt-json")
                self.prompt_box = prompt_box
            with gr.Column(scale=2):
                self.sources = gr.HTML(chat_sources_html([]), elem_id="sources-panel")
        self.turns = gr.State(ChatTurns())

    def wire(self, options: OptionsTab) -> None:
        outputs = [self.chatbot, self.sources, self.turns, self.prompt, self.copy_text, self.status]
        # the box is cleared at once; the question travels in this state (which also tells
        # a late page-load restore that this session has started chatting)
        self.asked = gr.State("")
        clear_box = self.question.submit(
            lambda text: ("", text), self.question, [self.question, self.asked], queue=False
        )
        self.answered = clear_box.then(
            self.respond_event, [self.asked, self.chatbot, self.turns, *options.components], outputs,
            concurrency_limit=None,  # self.gate bounds the work; waiting holds no queue slot
        )  # fmt: skip
        self.stop.click(None, None, None, cancels=[self.answered], queue=False)
        self.new_chat.click(
            lambda: ([], chat_sources_html([]), ChatTurns(), None, "", ""), None, outputs,
            queue=False,
        )  # fmt: skip
        self.chatbot.clear(
            lambda: ([], chat_sources_html([]), ChatTurns(), None, "", ""), None, outputs
        )
        self.copy.click(None, [self.copy_text], None, js=COPY_JS)
        self.filter_notice.wire(options)
        options.show_prompt.change(
            lambda show: gr.Accordion(visible=show), options.show_prompt, self.prompt_box,
            queue=False,
        )  # fmt: skip

    def respond_event(
        self, request: gr.Request, message: str, messages: list, turns: ChatTurns, *values
    ) -> Iterator:
        """`respond` for Gradio, which passes the request: its user or session owns the slot."""
        owner = request.username or request.session_hash or "anonymous"
        yield from self.respond(
            message, messages, turns, *values, owner=owner, session=request.session_hash or ""
        )

    def shown(
        self, turns: ChatTurns, show_prompt: bool, session: str = ""
    ) -> tuple[str, object, str]:
        """What the sources panel, prompt box and copy text show for `turns`.

        A streamed answer re-sends these instead of `gr.skip()`: Gradio 6 answers a skip
        by giving the session a copy of the component under a new id, and the next real
        value then registers that copy (and its whole config, panel HTML included) for
        good, so every answer grew the server by ~0.2 MB (docs/RELIABILITY.md §6)."""
        last = turns.recent[-1] if turns.recent else None
        prompt = last.prompt if last is not None and show_prompt else None
        return self.panel(turns, session), prompt, plain_text(last) if last else ""

    def panel(self, turns: ChatTurns, session: str) -> str:
        """The sources panel of `turns`, rendered once for the session's latest turns.

        Each answer re-sends the panel of the turns before it as it starts (see
        `shown`), and Gradio hands a session's State back as the very object stored, so
        that is a lookup here; recomputing it (paper records for the PDF buttons, the
        HTML of up to ui_session_turns answers' sources) was 7 % of the server's GIL
        time under 20 users. One entry per session, holding the turns it was rendered
        for (which the session's State holds anyway): a ChatTurns never changes, so
        neither does its panel."""
        with self._panels_lock:
            cached = self._panels.get(session)
            if cached is not None and cached[0] is turns:
                self._panels.move_to_end(session)
                return cached[1]
        panel = sources_panel(self.index, turns)
        with self._panels_lock:
            self._panels[session] = (turns, panel)
            self._panels.move_to_end(session)
            while len(self._panels) > PANEL_CACHE:
                self._panels.popitem(last=False)
        return panel

    def respond(
        self, message: str, messages: list, turns: ChatTurns, *values,
        owner: str = "anonymous", session: str = "",
    ) -> Iterator:  # fmt: skip
        """Stream one answer: text deltas first, then the rendered answer with its sources."""
        started = time.time()
        options = session_options(*values)
        panel, prompt, copy = self.shown(turns, options.show_prompt, session)
        messages = list(messages or [])
        message = (message or "").strip()
        if not message:
            yield messages, panel, turns, prompt, copy, ""
            return
        too_long = question_problem(message, self.settings)
        if too_long:
            messages += [{"role": "user", "content": escape_text(shorten(message))},
                         {"role": "assistant", "content": f"**Problem:** {too_long}"}]  # fmt: skip
            yield messages, panel, turns, prompt, copy, ""
            return
        messages += [{"role": "user", "content": message}, {"role": "assistant", "content": "…"}]
        yield messages, panel, turns, prompt, copy, "searching the papers…"
        if self.index.paper_count() == 0:
            messages[-1]["content"] = EMPTY_CORPUS
            yield messages, panel, turns, prompt, copy, ""
            return
        history = list(turns.recent)  # full results: a follow-up carries their cited papers over
        streamed = ""
        try:
            settings = options.settings(self.settings)
            answerer = Answerer(self.index, settings)
            answer = lambda: answerer.stream(message, history, options.filters())  # noqa: E731
            for item in self.gate.run(answer, answerer.mode != "extractive", owner):
                if isinstance(item, Waiting):
                    yield messages, panel, turns, prompt, copy, item.status
                elif isinstance(item, AnswerResult):
                    arrived = time.time()
                    turns = turns.add(item, self.settings.ui_session_turns)
                    messages[-1]["content"] = with_banner(item, answer_html(item, turns.count - 1))
                    panel, prompt, copy = self.shown(turns, options.show_prompt, session)
                    yield messages, panel, turns, prompt, copy, status_line(item)
                    if self.settings.ui_answer_log:  # resumed: Gradio has sent the answer
                        log_answer(self.settings.ui_answer_log, {
                            "session": session, "started": started, "result": arrived,
                            "sent": time.time(), "timings_ms": item.timings_ms,
                        })  # fmt: skip
                elif answerer.mode == "extractive":
                    # Its stages and text come a fraction of a second before its result:
                    # "searching the papers…" stays up (a Waiting ticks if it lasts). Each
                    # update re-sends the whole chat; these were three of five per answer.
                    continue
                elif isinstance(item, Stage):
                    yield messages, panel, turns, prompt, copy, f"{item.name}…"
                else:
                    streamed += item
                    messages[-1]["content"] = escape_text(streamed)
                    yield messages, panel, turns, prompt, copy, "writing…"
        except EndpointRefused as exc:
            messages[-1]["content"] = f"**Refused:** {html.escape(str(exc))}"
            yield messages, panel, turns, prompt, copy, ""
        except (LLMError, LocalLLMError) as exc:
            messages[-1]["content"] = llm_down_message(exc)
            yield messages, panel, turns, prompt, copy, ""
        except Exception as exc:  # the app must survive anything one question triggers
            log.exception("answering %r failed", message)
            messages[-1]["content"] = (
                f"**Problem:** Something went wrong answering this question ({type(exc).__name__}: "
                f"{html.escape(str(exc)[:300])}). The app is still running; try again or "
                "change the Settings."
            )
            yield messages, panel, turns, prompt, copy, ""
