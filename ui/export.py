"""Export buttons under the chat: the current answer or the whole conversation as a file.

Markdown carries the answers with reference lists in the chosen CSL style;
BibTeX, RIS and CSL-JSON carry the cited papers for a reference manager. The
file is written to a fresh temporary directory and handed to a download
component (Gradio serves files from the system temp directory).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from rag.answer import AnswerResult
from rag.export import EXPORT_FORMATS, STYLES, SUFFIXES, export_text
from rag.index import PaperIndex
from rag.settings import Settings

if TYPE_CHECKING:
    from ui.chat import ChatTurns

FORMAT_LABELS = {"Markdown": "markdown", "BibTeX": "bibtex", "RIS": "ris", "CSL-JSON": "csl-json"}
assert set(FORMAT_LABELS.values()) == set(EXPORT_FORMATS)


def export_filename(question: str, fmt: str, whole: bool) -> str:
    """A readable file name from the (first) question: 'glacier-retreat-measured.bib'."""
    words = re.findall(r"[A-Za-z0-9]+", question.lower())[:6]
    stem = "-".join(words) or "answer"
    return f"{'conversation-' if whole else ''}{stem}{SUFFIXES[fmt]}"


class ExportPanel:
    def __init__(self, settings: Settings, index: PaperIndex):
        self.settings = settings
        self.index = index

    def build(self) -> None:
        with gr.Accordion("Export", open=False, elem_id="export-panel"):
            with gr.Row():
                self.format = gr.Dropdown(
                    list(FORMAT_LABELS), value="Markdown", label="Format", elem_id="export-format",
                    info="Markdown: answers with references · BibTeX / RIS / CSL-JSON: cited papers",
                )  # fmt: skip
                styles = list(dict.fromkeys([self.settings.export_style, *STYLES]))
                self.style = gr.Dropdown(
                    styles, value=self.settings.export_style, label="Reference style (Markdown)",
                    allow_custom_value=True, elem_id="export-style",
                )  # fmt: skip
            with gr.Row():
                self.answer_button = gr.Button("Export answer", size="sm", elem_id="export-answer")
                self.chat_button = gr.Button(
                    "Export conversation", size="sm", elem_id="export-conversation"
                )
            self.file = gr.File(label="Download", interactive=False, elem_id="export-file")
            self.message = gr.Markdown("", elem_id="export-message")

    def wire(
        self, turns: gr.State, current: gr.BrowserState,
        saved: Callable[[str, gr.Request], Sequence[AnswerResult]],
    ) -> None:  # fmt: skip
        """`turns`: the session's ChatTurns; `current`: the id of the chat's saved
        conversation; `saved(id, request)`: that conversation's turns, which still hold
        the ones the session no longer keeps."""

        def conversation(
            turns: ChatTurns, label: str, style: str, conversation_id: str, request: gr.Request
        ):
            return self.export(turns, label, style, True, saved(conversation_id, request))

        self.answer_button.click(
            lambda t, f, s: self.export(t, f, s, whole=False), [turns, self.format, self.style],
            [self.file, self.message],
        )  # fmt: skip
        self.chat_button.click(
            conversation, [turns, self.format, self.style, current], [self.file, self.message]
        )

    def export(
        self, turns: ChatTurns, label: str, style: str, whole: bool,
        saved: Sequence[AnswerResult] = (),
    ) -> tuple[str | None, str]:  # fmt: skip
        """(path of the written file, message) for the last answer or every answer.

        `saved`: the chat's conversation as stored, which still has the turns the
        session no longer keeps; the session's own turns count from `turns.first` on."""
        if not turns.recent:
            return None, "Ask a question first: there is nothing to export yet."
        fmt = FORMAT_LABELS.get(label, "markdown")
        if not whole:
            results = [turns.recent[-1]]
        else:
            earlier = list(saved[: turns.first]) if len(saved) >= turns.first else []
            results = earlier + list(turns.recent)
        try:
            text = export_text(
                results, fmt, self.index, style or self.settings.export_style,
                title=results[0].question,
            )  # fmt: skip
        except ValueError as exc:
            return None, f"**Problem:** {exc}"
        path = Path(tempfile.mkdtemp(prefix="rag-export-")) / export_filename(
            results[0].question, fmt, whole
        )
        path.write_text(text, encoding="utf-8")
        cited = len({s.paper_id for r in results for s in r.sources if s.cited})
        missing = turns.count - len(results) if whole else 0
        lost = f" (the {missing} earliest were not saved)" if missing else ""
        return str(path), f"{label}: {len(results)} answer(s){lost}, {cited} cited paper(s)"
