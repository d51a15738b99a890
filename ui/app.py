"""Gradio chat over the paper index: streamed, cited answers and a sources panel."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import rag  # noqa: F401  (offline environment first)
import gradio as gr

from rag.answer import Answerer, AnswerResult
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.llm import LLMError
from rag.local_llm import LocalLLMError
from rag.render import answer_html, sources_html
from rag.settings import BUNDLED_CORPUS, Settings

CSS = """
.cite-chip { display:inline-block; min-width:1.4em; padding:0 .35em; margin:0 .1em;
  border-radius:.7em; background:#2563eb; color:#fff !important; font-size:.8em;
  text-align:center; text-decoration:none; }
.source-card { border:1px solid #d0d7de; border-radius:8px; padding:.6em; margin:.5em 0; }
.source-card.highlight { border-color:#2563eb; box-shadow:0 0 0 3px #93c5fd; }
.source-title { font-weight:600; } .source-meta { font-size:.85em; color:#57606a; }
.source-abstract { font-size:.9em; margin-top:.3em; }
.answer-note { font-size:.85em; color:#9a6700; margin-top:.4em; }
"""

EXAMPLES = [
    "How does TokenUnify combine different token prediction objectives?",
    "Which papers propose datasets for scene text recognition in Indian languages?",
    "How can quantile regression models be aggregated?",
]


def ensure_corpus(index: PaperIndex) -> None:
    """First run: an empty default index gets the bundled corpus."""
    if index.paper_count() == 0:
        print("Indexing the bundled corpus (first run only)...", file=sys.stderr)
        report = ingest_paths(index, [BUNDLED_CORPUS])
        print(report.summary(), file=sys.stderr)


def build_app(settings: Settings) -> gr.Blocks:
    index = PaperIndex(settings)
    answerer = Answerer(index, settings)

    def respond(message: str, history: list) -> Iterator[tuple[list, str]]:
        history = list(history or []) + [{"role": "user", "content": message}]
        if not message.strip():
            yield history, ""
            return
        history.append({"role": "assistant", "content": ""})
        streamed = ""
        try:
            for item in answerer.stream(message):
                if isinstance(item, AnswerResult):
                    history[-1]["content"] = answer_html(item)
                    yield history, sources_html(item)
                else:
                    streamed += item
                    history[-1]["content"] = streamed
                    yield history, ""
        except (LLMError, LocalLLMError) as exc:
            history[-1]["content"] = f"⚠️ {exc}"
            yield history, ""

    with gr.Blocks(title="Paper QA") as app:
        gr.Markdown(f"### Ask the papers · {index.paper_count()} papers indexed · answers by {answerer.mode}")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(height=520, label="Chat", sanitize_html=False)
                question = gr.Textbox(placeholder="Ask a question about the papers…", label="Question")
                gr.Examples(EXAMPLES, inputs=question)
            with gr.Column(scale=2):
                sources = gr.HTML("<p>Sources appear here.</p>", elem_id="sources-panel")
        question.submit(respond, [question, chatbot], [chatbot, sources]).then(
            lambda: "", None, question
        )
    return app


def launch(settings: Settings, ingest_bundled: bool = True) -> None:
    if ingest_bundled:
        ensure_corpus(PaperIndex(settings))
    app = build_app(settings)
    app.queue(default_concurrency_limit=2).launch(
        server_name=settings.host, server_port=settings.port, css=CSS, show_error=True
    )
