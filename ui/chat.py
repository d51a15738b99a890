"""The Chat tab: streamed, cited answers, a sources panel, multi-turn follow-ups.

Each browser session keeps its own turns (gr.State); every question is
answered with that session's options and the earlier turns as history. Any
failure becomes a friendly message in the chat: the app keeps serving.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator

import gradio as gr

from rag.answer import Answerer, AnswerResult, Stage
from rag.index import PaperIndex
from rag.llm import LLMError
from rag.local_llm import LocalLLMError
from rag.render import answer_html, chat_sources_html, escape_text, plain_text
from rag.settings import Settings
from ui.assets import COPY_JS
from ui.options import OptionsTab, session_options

log = logging.getLogger(__name__)

EXAMPLES = [
    "How does TokenUnify combine different token prediction objectives?",
    "Which papers propose datasets for scene text recognition in Indian languages?",
    "How can quantile regression models be aggregated?",
]
EMPTY_CORPUS = "The corpus is empty: add papers in the **Corpus** tab first."


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
        f"{len(result.sources)} retrieved{' · abstained' if result.abstained else ''}{rewritten}"
    )


class ChatTab:
    def __init__(self, settings: Settings, index: PaperIndex):
        self.settings = settings
        self.index = index

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
                self.status = gr.Markdown("", elem_id="answer-status")
                gr.Examples(EXAMPLES, inputs=self.question, label="Example questions")
                self.copy_text = gr.Textbox(visible=False)
                with gr.Accordion("Prompt actually sent", open=False, visible=False) as prompt_box:
                    self.prompt = gr.JSON(label="messages", elem_id="prompt-json")
                self.prompt_box = prompt_box
            with gr.Column(scale=2):
                self.sources = gr.HTML(chat_sources_html([]), elem_id="sources-panel")
        self.turns = gr.State([])

    def wire(self, options: OptionsTab) -> None:
        outputs = [self.chatbot, self.sources, self.turns, self.prompt, self.copy_text, self.status]
        asked = gr.State("")  # the box is cleared at once; the question travels in this state
        clear_box = self.question.submit(
            lambda text: ("", text), self.question, [self.question, asked], queue=False
        )
        clear_box.then(
            self.respond, [asked, self.chatbot, self.turns, *options.components], outputs,
        )  # fmt: skip
        self.new_chat.click(
            lambda: ([], chat_sources_html([]), [], None, "", ""), None, outputs, queue=False
        )
        self.chatbot.clear(lambda: ([], chat_sources_html([]), [], None, "", ""), None, outputs)
        self.copy.click(None, [self.copy_text], None, js=COPY_JS)
        options.show_prompt.change(
            lambda show: gr.Accordion(visible=show), options.show_prompt, self.prompt_box,
            queue=False,
        )  # fmt: skip

    def respond(self, message: str, messages: list, turns: list[AnswerResult], *values) -> Iterator:
        """Stream one answer: text deltas first, then the rendered answer with its sources."""
        options = session_options(*values)
        messages = list(messages or [])
        message = (message or "").strip()
        if not message:
            yield messages, gr.skip(), turns, gr.skip(), gr.skip(), ""
            return
        messages += [{"role": "user", "content": message}, {"role": "assistant", "content": "…"}]
        yield messages, gr.skip(), turns, gr.skip(), gr.skip(), "searching the papers…"
        if self.index.paper_count() == 0:
            messages[-1]["content"] = EMPTY_CORPUS
            yield messages, gr.skip(), turns, gr.skip(), gr.skip(), ""
            return
        settings = options.settings(self.settings)
        history = list(turns)  # full results: a follow-up carries their cited papers over
        streamed = ""
        try:
            answerer = Answerer(self.index, settings)
            for item in answerer.stream(message, history, options.filters()):
                if isinstance(item, AnswerResult):
                    turns = [*turns, item]
                    messages[-1]["content"] = answer_html(item, len(turns) - 1)
                    prompt = item.prompt if options.show_prompt else None
                    yield (
                        messages, chat_sources_html(turns), turns, prompt, plain_text(item),
                        status_line(item),
                    )  # fmt: skip
                elif isinstance(item, Stage):
                    yield messages, gr.skip(), turns, gr.skip(), gr.skip(), f"{item.name}…"
                else:
                    streamed += item
                    messages[-1]["content"] = escape_text(streamed)
                    yield messages, gr.skip(), turns, gr.skip(), gr.skip(), "writing…"
        except (LLMError, LocalLLMError) as exc:
            messages[-1]["content"] = llm_down_message(exc)
            yield messages, gr.skip(), turns, gr.skip(), gr.skip(), ""
        except Exception as exc:  # the app must survive anything one question triggers
            log.exception("answering %r failed", message)
            messages[-1]["content"] = (
                f"**Problem:** Something went wrong answering this question ({type(exc).__name__}: "
                f"{html.escape(str(exc)[:300])}). The app is still running; try again or "
                "change the Settings."
            )
            yield messages, gr.skip(), turns, gr.skip(), gr.skip(), ""
