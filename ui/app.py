"""Gradio app over the paper index: Chat, Corpus, Eval and Settings tabs.

Each tab is its own module; this one lays them out, wires them to the shared
per-session Settings controls, and launches with the deployment guards (queue
limits, upload limit, logins) taken from `Settings`.
"""

from __future__ import annotations

import os
import sys
import threading

import gradio as gr
import torch

import rag  # noqa: F401  (offline environment first)
from rag.conversations import ConversationStore
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.llm import resolve_mode
from rag.settings import BUNDLED_CORPUS, Settings
from ui.api import server_extras
from ui.assets import CSS, HEAD
from ui.auth import Users
from ui.chat import ChatTab
from ui.corpus import CorpusTab
from ui.evaluation import EvalTab
from ui.history import HistoryPanel
from ui.limits import answer_threads
from ui.memory import limit_arenas
from ui.options import OptionsTab
from ui.pdfview import PdfViewer


QUEUE_STATS_EVENTS = 1000
"""Finished events whose timings Gradio's queue keeps for its "Runs" page (its default, 10,000)."""
QUEUE_STATS_EVERY = 100
"""Events between two recomputations of that page's summary (its default, 1)."""


def bound_queue_stats() -> None:
    """Gradio's queue rebuilds a pandas table of the last 10,000 events' timings after
    every event, for its "Runs" page: ~11 % of the server's GIL time under 20 users, and
    growing with every answer until the cap. The page stays; it is refreshed every 100
    events over the last 1,000. Set before the queue is made (it reads them then);
    explicit GRADIO_ANALYTICS_* variables win."""
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", str(QUEUE_STATS_EVENTS))
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(QUEUE_STATS_EVERY))


def ensure_corpus(index: PaperIndex) -> None:
    """First run: an empty default index gets the bundled corpus."""
    if index.paper_count() == 0:
        print("Indexing the bundled corpus (first run only)...", file=sys.stderr)
        report = ingest_paths(index, [BUNDLED_CORPUS])
        print(report.summary(), file=sys.stderr)


def build_app(settings: Settings, index: PaperIndex | None = None) -> gr.Blocks:
    index = index or PaperIndex(settings)
    chat, corpus = ChatTab(settings, index), CorpusTab(settings, index)
    evaluation, options = EvalTab(settings), OptionsTab(settings)
    viewer = PdfViewer(settings, index)
    with gr.Blocks(title="Paper QA") as app:
        gr.Markdown(
            f"### Ask the papers · cited answers over your corpus · default generator "
            f"`{resolve_mode(settings)}`"
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat.build()
                viewer.build()
            with gr.Tab("Corpus", id="corpus") as corpus_tab:
                corpus.build()
            with gr.Tab("Eval", id="eval"):
                evaluation.build()
            with gr.Tab("Settings", id="settings"):
                options.build()
        chat.wire(options)
        viewer.wire(chat.turns)
        history = HistoryPanel(
            ConversationStore.for_index(settings.index), settings.ui_session_turns, index
        )
        history.build()
        history.wire(app, chat, options)
        corpus.wire(corpus_tab)
        evaluation.wire(options)
    return app


def share_cores(settings: Settings) -> int:
    """Give each of the `ui_concurrency` answers that run at once its share of the cores
    (torch's intra-op pool is process-wide); returns the threads set."""
    threads = answer_threads(os.cpu_count() or 1, settings.ui_concurrency)
    torch.set_num_threads(threads)
    return threads


def launch(
    settings: Settings, users: Users | None = None, ingest_bundled: bool = True,
    block: bool = True, index: PaperIndex | None = None,
) -> gr.Blocks:  # fmt: skip
    """Serve the app; with block=False return at once (tests drive it from a browser)."""
    limit_arenas(settings.ui_malloc_arenas)  # before the worker threads allocate
    share_cores(settings)
    index = index or PaperIndex(settings)
    if ingest_bundled:
        ensure_corpus(index)
    app = build_app(settings, index)
    # Load the embedding model while the server comes up, not on the first question.
    threading.Thread(target=lambda: index.embedder, name="warm-embedder", daemon=True).start()
    eval_runs = settings.state_dir / "ui-eval"
    eval_runs.mkdir(parents=True, exist_ok=True)
    bound_queue_stats()
    app.queue(default_concurrency_limit=settings.ui_concurrency, max_size=settings.ui_queue_size)
    app.launch(
        server_name=settings.host, server_port=settings.port, auth=users or None,
        max_file_size=f"{settings.ui_max_upload_mb}mb", allowed_paths=[str(eval_runs)],
        css=CSS, head=HEAD, show_error=True, prevent_thread_lock=not block, quiet=not block,
        app_kwargs=server_extras(settings, index, users or []),  # HTTP API at /api, MCP at /mcp
        state_session_capacity=settings.ui_max_sessions,
    )  # fmt: skip
    return app
