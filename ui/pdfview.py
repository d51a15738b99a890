"""The PDF viewer: a cited paper opened at the cited page, the evidence highlighted.

Source cards of papers ingested from a PDF carry "Open PDF at p. N" buttons
(rag/render.py). A click (or Enter on the focused button) puts "turn:n:page" in
a hidden textbox and presses a hidden button (ui/assets.py); the server takes
the paper id of source n of that turn from the session's own turns, looks the
paper up in the index and opens the file the paper record points to. The
browser never names a path, so only files papers in the index came from can be
opened. The page is rendered by PDFium on the server (rag/pdfpages.py) and shown
as an image with the evidence sentence's line boxes laid over it; prev/next, a
page field, a download of the original file and a close button move around it.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from rag.answer import AnswerResult
from rag.index import PaperIndex
from rag.papers import Paper
from rag.pdf import PdfError
from rag.pdfpages import IMAGE_MIME, RenderedPage, render_page
from rag.render import chat_sources_html, evidence_pages, sentence_supports
from rag.settings import Settings

if TYPE_CHECKING:  # ui/chat.py imports this module
    from ui.chat import ChatTurns

REQUEST = re.compile(r"^(\d{1,4}):(\d{1,4}):(\d{1,5})$")
"""What an "Open PDF" button sends: turn, source number, page. Nothing else is accepted."""
FOCUS_VIEWER = "() => document.querySelector('#pdf-next')?.focus()"
"""After opening, keyboard focus goes into the viewer (Tab reaches the other controls)."""


def pdf_file(paper: Paper | None) -> Path | None:
    """The PDF this paper was ingested from, when it is still there (else None)."""
    if paper is None or not paper.source.lower().endswith(".pdf"):
        return None
    path = Path(paper.source)
    return path if path.is_file() else None


def viewable(index: PaperIndex, turns: Sequence[AnswerResult]) -> set[str]:
    """Ids of the papers in these turns' sources that can be opened as PDFs."""
    ids = sorted({source.paper_id for turn in turns for source in turn.sources})
    return {paper_id for paper_id, paper in index.get_papers(ids).items() if pdf_file(paper)}


def sources_panel(index: PaperIndex, turns: ChatTurns) -> str:
    """The chat's sources panel, with PDF buttons on the sources that have a PDF."""
    recent = turns.recent
    return chat_sources_html(recent, turns.first, viewable(index, recent) if recent else set())


@dataclass(frozen=True)
class Target:
    """What the viewer shows: a paper (by id), the cited page and the quote to find there."""

    paper_id: str
    title: str
    n: int
    cited_page: int
    quote: str
    page: int


def target_of(turns: ChatTurns, request: str) -> Target | None:
    """The source a button names ("turn:n:page"), from this session's own turns (turn
    numbers count every turn of the chat; only the latest are kept)."""
    match = REQUEST.match((request or "").strip())
    if not match:
        return None
    turn, n, page = (int(group) for group in match.groups())
    if not turns.first <= turn < turns.count:
        return None
    result = turns.recent[turn - turns.first]
    source = next((source for source in result.sources if source.n == n), None)
    if source is None:
        return None
    quotes = [
        sentence.evidence
        for sentence in sentence_supports(result)
        if sentence.backs(n) and sentence.evidence and evidence_pages([sentence]) == [page]
    ]
    page = max(page, 1)
    return Target(source.paper_id, source.title, n, page, quotes[0] if quotes else "", page)


def page_html(target: Target, rendered: RenderedPage) -> str:
    """The page image with the highlight boxes over it (percentages: any display size)."""
    image = base64.b64encode(rendered.image).decode("ascii")
    boxes = "".join(
        f'<div class="pdf-highlight" style="left:{box.left:.3%};top:{box.top:.3%};'
        f'width:{box.right - box.left:.3%};height:{box.bottom - box.top:.3%}"></div>'
        for box in rendered.boxes
    )
    return (
        f'<div class="pdf-page" data-page="{rendered.page}">'
        f'<img src="data:{IMAGE_MIME};base64,{image}" width="{rendered.width}" '
        f'height="{rendered.height}" alt="page {rendered.page} of {html.escape(target.title)}">'
        f"{boxes}</div>"
    )


def header_html(target: Target, rendered: RenderedPage | None, problem: str = "") -> str:
    """Title, "p. 7 of 15", and whether the cited passage was found on this page."""
    title = f'<span class="pdf-title">[{target.n}] {html.escape(target.title)}</span>'
    if rendered is None:
        problem = f'<div class="pdf-problem">{html.escape(problem)}</div>'
        return f'<div class="pdf-head">{title}{problem}</div>'
    where = f'<span class="pdf-where">p. {rendered.page} of {rendered.pages}</span>'
    if rendered.page != target.cited_page:
        note = f"the cited passage is on p. {target.cited_page}"
    elif not target.quote:
        note = ""
    elif rendered.boxes and rendered.exact:
        note = "cited passage highlighted"
    elif rendered.boxes:
        note = "cited passage located from its first words (highlight approximate)"
    else:
        note = "the cited passage could not be located exactly on this page"
    return (
        f'<div class="pdf-head">{title} · {where}'
        f'{f" · <span class=pdf-note>{note}</span>" if note else ""}</div>'
    )


class PdfViewer:
    """The viewer panel and its events; one per app, its state per session."""

    def __init__(self, settings: Settings, index: PaperIndex):
        self.settings = settings
        self.index = index
        self.downloads = Path(tempfile.mkdtemp(prefix="rag-pdfview-"))
        """Copies handed to the download button (Gradio serves files from temp dirs only)."""

    def build(self) -> None:
        # The trigger the source-card buttons drive: in the DOM, never shown.
        self.request = gr.Textbox(elem_id="pdf-request", visible="hidden", show_label=False)
        self.trigger = gr.Button("open", elem_id="pdf-open", visible="hidden")
        self.target = gr.State(None)
        with gr.Column(visible=False, elem_id="pdf-viewer", elem_classes=["pdf-viewer"]) as panel:
            self.header = gr.HTML("", elem_id="pdf-header")
            with gr.Row(elem_classes=["pdf-controls"]):
                self.prev = gr.Button("◀ Previous page", size="sm", elem_id="pdf-prev")
                self.page = gr.Number(
                    label="Page", precision=0, minimum=1, elem_id="pdf-page-number",
                    min_width=80, scale=0,
                )  # fmt: skip
                self.next = gr.Button("Next page ▶", size="sm", elem_id="pdf-next")
                self.download = gr.DownloadButton(
                    "Download PDF", size="sm", elem_id="pdf-download", visible=False
                )
                self.close = gr.Button("Close", size="sm", elem_id="pdf-close")
            self.view = gr.HTML("", elem_id="pdf-page")
        self.panel = panel

    # --- handlers -------------------------------------------------------------------------
    def _show(self, target: Target | None, page: int | float | None):
        """(header, page view, page number, target) for `page` of the target's PDF."""
        if target is None:
            return gr.skip(), gr.skip(), gr.skip(), target
        paper = self.index.get_papers([target.paper_id]).get(target.paper_id)
        path = pdf_file(paper)
        if path is None:
            return self._problem(target, paper), "", None, target
        wanted = int(page or target.page)
        quote = target.quote if wanted == target.cited_page else ""
        try:
            rendered = render_page(path, wanted, quote, self.settings.ui_pdf_page_px)
        except PdfError as exc:
            return header_html(target, None, str(exc)), "", None, target
        target = replace(target, page=rendered.page)
        return header_html(target, rendered), page_html(target, rendered), rendered.page, target

    @staticmethod
    def _problem(target: Target, paper: Paper | None) -> str:
        if paper is None:
            problem = "This paper is no longer in the index."
        elif not paper.source.lower().endswith(".pdf"):
            problem = "This paper was not ingested from a PDF, so there is no file to open."
        else:
            problem = (
                f"The PDF this paper was ingested from is missing: {paper.source} "
                "(moved or deleted?). Ingest it again to open it here."
            )
        return header_html(target, None, problem)

    def _download(self, target: Target | None):
        """A copy of the paper's PDF for the download button (hidden when there is none)."""
        paper = self.index.get_papers([target.paper_id]).get(target.paper_id) if target else None
        path = pdf_file(paper)
        if path is None:
            return gr.DownloadButton(visible=False)
        folder = self.downloads / re.sub(r"[^\w.-]", "_", target.paper_id)
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / path.name
        if not copy.exists() or copy.stat().st_mtime < path.stat().st_mtime:
            shutil.copy2(path, copy)
        return gr.DownloadButton(value=str(copy), visible=True)

    def open(self, request: str, turns: ChatTurns | None):
        target = target_of(turns, request) if turns is not None else None
        if target is None:
            return (gr.skip(),) * 6
        header, view, number, target = self._show(target, target.page)
        return gr.Column(visible=True), header, view, number, target, self._download(target)

    def step(self, target: Target | None, delta: int):
        return self._show(target, target.page + delta if target else None)

    # --- wiring ---------------------------------------------------------------------------
    def wire(self, turns: gr.State) -> None:
        shown = [self.header, self.view, self.page, self.target]
        self.trigger.click(
            self.open, [self.request, turns],
            [self.panel, *shown[:3], self.target, self.download],
        ).then(None, None, None, js=FOCUS_VIEWER)  # fmt: skip
        self.prev.click(lambda target: self.step(target, -1), self.target, shown)
        self.next.click(lambda target: self.step(target, 1), self.target, shown)
        self.page.submit(self._show, [self.target, self.page], shown)
        self.close.click(lambda: gr.Column(visible=False), None, self.panel)
