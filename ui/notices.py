"""A live line under the question box saying what the Settings tab's filters leave.

Filters can silently shrink the corpus to a handful of papers (or drop every
undated paper under a year filter); this shows the count as soon as a filter
changes, before anyone wonders why an answer abstained.
"""

from __future__ import annotations

import gradio as gr

from rag.filters import filter_notice
from rag.index import PaperIndex
from ui.options import OptionsTab, session_options


class FilterNotice:
    def __init__(self, index: PaperIndex):
        self.index = index

    def build(self) -> None:
        self.notice = gr.Markdown("", elem_id="filter-notice")

    def wire(self, options: OptionsTab) -> None:
        gr.on(
            [component.change for component in options.components], self.describe,
            options.components, self.notice, queue=False,
        )  # fmt: skip

    def describe(self, *values) -> str:
        chosen = session_options(*values)
        self.index.lexical.sync_with(self.index)
        return filter_notice(self.index.lexical.metadata(), chosen.filters(), int(chosen.top_k))
