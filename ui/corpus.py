"""The Corpus tab: upload papers (every ingest format), browse/search them, delete, statistics.

Uploads are checked for type and size before anything is parsed, copied into
`<index>/uploads/` (so a paper's `source` stays meaningful after Gradio's temp
files are gone), then ingested with a progress bar. Writes to the index run
one at a time across all sessions.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from rag.formats import SUPPORTED_SUFFIXES
from rag.index import IndexBusyError, PaperIndex
from rag.ingest import ingest_paths
from rag.papers import Paper
from rag.settings import Settings
from ui.progress import ingest_progress

log = logging.getLogger(__name__)

COLUMNS = ["id", "title", "year", "authors", "categories", "source"]
COLUMN_WIDTHS = ["15%", "37%", "6%", "18%", "10%", "14%"]
MAX_ROWS = 500  # rows shown at once; searching narrows the list
PAGE_SIZE = 50
SORTS = ["as ingested", "newest first", "oldest first", "title A–Z"]
INDEX_WRITES = "index-writes"  # Gradio concurrency id shared by ingest and delete


def check_upload(path: Path, max_mb: int) -> str | None:
    """Why an uploaded file is refused, or None when it may be ingested."""
    if not path.name.lower().endswith(SUPPORTED_SUFFIXES):
        return f"{path.name}: unsupported type (use {', '.join(SUPPORTED_SUFFIXES)})"
    size_mb = path.stat().st_size / 1_000_000
    if size_mb > max_mb:
        return (
            f"{path.name}: {size_mb:.1f} MB is over the {max_mb} MB upload limit "
            "(setting ui_max_upload_mb)"
        )
    return None


def split_by_count(files: Sequence[str], max_files: int) -> tuple[list[str], list[str]]:
    """The files one upload may ingest, and one refusal line per file beyond the limit."""
    refused = [
        f"{Path(name).name}: over the {max_files} files per upload limit "
        "(setting ui_max_upload_files)"
        for name in files[max_files:]
    ]
    return list(files[:max_files]), refused


def paper_matches(paper: Paper, query: str) -> bool:
    query = query.lower()
    return any(query in field.lower() for field in (paper.id, paper.title, paper.authors))


def title_cell(paper: Paper) -> str:
    """The title as a Markdown link when the paper has a URL (the column renders Markdown)."""
    title = paper.title.replace("[", "(").replace("]", ")")
    return f"[{title}]({paper.url.replace(')', '%29')})" if paper.url else title


def paper_rows(papers: Sequence[Paper], query: str = "", limit: int = MAX_ROWS) -> list[list]:
    """Table rows of the papers matching `query` (id, title or authors), at most `limit`."""
    rows = []
    for paper in papers:
        if query.strip() and not paper_matches(paper, query.strip()):
            continue
        rows.append([
            paper.id, title_cell(paper), paper.year or "", paper.authors[:120], paper.categories,
            Path(paper.source).name if paper.source else "",
        ])  # fmt: skip
        if len(rows) >= limit:
            break
    return rows


def sorted_papers(papers: Sequence[Paper], sort: str) -> list[Paper]:
    """Papers in the chosen order; undated papers go last under either year order."""
    if sort == "newest first":
        return sorted(papers, key=lambda p: (p.year == 0, -p.year))
    if sort == "oldest first":
        return sorted(papers, key=lambda p: (p.year == 0, p.year))
    if sort == "title A–Z":
        return sorted(papers, key=lambda p: p.title.casefold())
    return list(papers)


def paper_page(
    papers: Sequence[Paper], query: str = "", sort: str = SORTS[0], page: int = 1,
    page_size: int = PAGE_SIZE,
) -> tuple[list[list], int, str]:  # fmt: skip
    """(rows of one page, the page actually shown, 'rows a–b of n') for the matching papers."""
    matching = [p for p in papers if not query.strip() or paper_matches(p, query.strip())]
    pages = max(1, -(-len(matching) // page_size))
    page = min(max(1, int(page or 1)), pages)
    start = (page - 1) * page_size
    rows = paper_rows(sorted_papers(matching, sort)[start : start + page_size], limit=page_size)
    shown = f"rows {start + 1}–{start + len(rows)} of {len(matching)}" if rows else "no papers"
    return rows, page, f"{shown} · page {page} of {pages}"


def corpus_stats(index: PaperIndex, papers: Sequence[Paper]) -> str:
    years = [paper.year for paper in papers if paper.year]
    categories = Counter(c for paper in papers for c in paper.categories.split())
    sources = Counter(Path(paper.source).name for paper in papers if paper.source)
    lines = [
        f"**{len(papers)}** papers · **{index.chunk_count()}** chunks · embedder "
        f"`{index.embedder_label}` · index `{index.location}`",
    ]
    if years:
        lines.append(f"years {min(years)}–{max(years)} ({len(years)} papers dated)")
    if categories:
        lines.append(
            "top categories: " + ", ".join(f"{c} ({n})" for c, n in categories.most_common(8))
        )
    if sources:
        lines.append("files: " + ", ".join(f"{s} ({n})" for s, n in sources.most_common(6)))
    return "  \n".join(lines)


class CorpusTab:
    def __init__(self, settings: Settings, index: PaperIndex):
        self.settings = settings
        self.index = index
        self.uploads = settings.index / "uploads"

    def build(self) -> None:
        with gr.Row():
            with gr.Column(scale=2):
                limit = self.settings.ui_max_upload_mb
                self.files = gr.File(
                    label=f"Upload papers (PDF, BibTeX, RIS, CSL-JSON, JSONL(.gz), CSV, text; "
                    f"≤ {limit} MB each)",
                    file_count="multiple", elem_id="upload",
                )  # fmt: skip
                self.ingest = gr.Button("Add to index", variant="primary", elem_id="ingest")
                self.report = gr.Markdown("", elem_id="ingest-report")
            with gr.Column(scale=3):
                self.stats = gr.Markdown("", elem_id="corpus-stats")
                with gr.Row():
                    self.search = gr.Textbox(
                        label="Search papers (id, title, authors)", scale=4, elem_id="paper-search"
                    )
                    self.refresh = gr.Button("Refresh", size="sm", scale=1)
                with gr.Row():
                    self.selected = gr.Textbox(
                        label="Selected paper id (click a row)", scale=4, elem_id="selected-paper"
                    )
                    self.delete = gr.Button(
                        "Delete paper", variant="stop", scale=1, elem_id="delete"
                    )
                with gr.Row(visible=False) as confirm_row:
                    self.confirm_text = gr.Markdown("", elem_id="delete-question")
                    self.confirm = gr.Button("Yes, delete", variant="stop", size="sm", scale=0,
                                             elem_id="delete-confirm")  # fmt: skip
                    self.cancel = gr.Button("Cancel", size="sm", scale=0, elem_id="delete-cancel")
                self.confirm_row = confirm_row
        with gr.Row(elem_id="paper-pager"):
            self.page_info = gr.Markdown("", elem_id="paper-page-info")
            with gr.Column(scale=0, min_width=190):  # own columns: no shared form box
                self.sort = gr.Dropdown(SORTS, value=SORTS[0], label="Sort", show_label=False,
                                        elem_id="paper-sort")  # fmt: skip
            with gr.Column(scale=0, min_width=90):
                self.page = gr.Number(value=1, precision=0, minimum=1, label="Page",
                                      show_label=False, elem_id="paper-page")  # fmt: skip
            self.prev_page = gr.Button("◀ Previous", size="sm", scale=0, min_width=110,
                                       elem_id="prev-page")  # fmt: skip
            self.next_page = gr.Button("Next ▶", size="sm", scale=0, min_width=90, elem_id="next-page")
        self.table = gr.Dataframe(
            headers=COLUMNS, value=[], interactive=False, wrap=True, elem_id="paper-table",
            max_height=620, label="Papers", column_widths=COLUMN_WIDTHS,
            datatype=["str", "markdown", "number", "str", "str", "str"],
        )  # fmt: skip

    def wire(self, tab: gr.Tab) -> None:
        """Listing scans every paper, so it runs when the tab is opened, not on page load."""
        listing = [self.stats, self.table, self.page, self.page_info]
        view = [self.search, self.sort, self.page]
        tab.select(self.list_papers, view, listing)
        self.search.submit(lambda q, s: self.list_papers(q, s, 1), view[:2], listing)
        self.sort.input(lambda q, s: self.list_papers(q, s, 1), view[:2], listing)
        self.page.submit(self.list_papers, view, listing)
        self.prev_page.click(lambda q, s, p: self.list_papers(q, s, (p or 1) - 1), view, listing)
        self.next_page.click(lambda q, s, p: self.list_papers(q, s, (p or 1) + 1), view, listing)
        self.refresh.click(self.list_papers, view, listing)
        self.ingest.click(
            self.ingest_files, [self.files, *view], [self.report, *listing, self.files],
            concurrency_limit=1, concurrency_id=INDEX_WRITES, show_progress_on=self.report,
        )  # fmt: skip
        self.table.select(self.select_row, None, self.selected)
        self.delete.click(self.ask_delete, self.selected, [self.confirm_row, self.confirm_text])
        self.cancel.click(lambda: gr.Row(visible=False), None, self.confirm_row)
        self.confirm.click(
            self.delete_paper, [self.selected, *view],
            [self.report, *listing, self.selected, self.confirm_row],
            concurrency_limit=1, concurrency_id=INDEX_WRITES, show_progress_on=self.report,
        )  # fmt: skip

    def list_papers(self, query: str = "", sort: str = SORTS[0], page: int = 1):
        """(stats, rows of the page, page shown, 'rows a–b of n') for the current view."""
        papers = list(self.index.iter_papers())
        rows, page, info = paper_page(papers, query or "", sort or SORTS[0], page)
        return corpus_stats(self.index, papers), rows, page, info

    def ask_delete(self, paper_id: str):
        """Deleting cannot be undone: name the paper and ask before doing it."""
        paper_id = (paper_id or "").strip()
        found = self.index.get_papers([paper_id]) if paper_id else {}
        if not found:
            missing = f"no paper with id {paper_id}" if paper_id else "select a paper first"
            return gr.Row(visible=True), f"**Problem:** {missing}."
        return gr.Row(visible=True), f"Delete **{found[paper_id].title}** ({paper_id})? This cannot be undone."

    @staticmethod
    def select_row(event: gr.SelectData) -> str:
        row = event.row_value or []
        return str(row[0]) if row else ""

    def ingest_files(
        self, files: list[str] | None, query: str, sort: str, page: int, progress=gr.Progress()
    ):
        if not files:
            return ("Choose one or more files first.", *self.list_papers(query, sort, page), None)
        files, problems = split_by_count(files, self.settings.ui_max_upload_files)
        accepted = []
        self.uploads.mkdir(parents=True, exist_ok=True)
        for name in files:
            path = Path(name)
            problem = check_upload(path, self.settings.ui_max_upload_mb)
            if problem:
                problems.append(problem)
                continue
            target = self.uploads / path.name
            shutil.copyfile(path, target)
            accepted.append(target)
        lines = []
        if accepted:
            progress(0, desc="parsing")
            try:
                report = ingest_paths(self.index, accepted, progress=ingest_progress(progress))
                for refused in report.refused:  # nothing of it is indexed: do not keep it
                    refused.unlink(missing_ok=True)
                lines.append(f"**Done:** {report.summary()}")
                problems += [
                    problem.replace(str(self.uploads) + "/", "")
                    for problem in report.notes + report.problems()
                ]
            except Exception as exc:  # a broken file must not take the app down
                log.exception("ingest failed")
                problems.append(f"ingest failed: {type(exc).__name__}: {exc}")
        lines += [f"**Problem:** {problem}" for problem in problems]
        return ("  \n".join(lines), *self.list_papers(query, sort, page), None)

    def delete_paper(self, paper_id: str, query: str, sort: str, page: int):
        paper_id = (paper_id or "").strip()
        try:
            deleted = bool(paper_id) and self.index.delete_paper(paper_id)
        except IndexBusyError as exc:
            return (f"**Problem:** {exc}", *self.list_papers(query, sort, page), paper_id)
        if not paper_id:
            message = "Select a paper (click its row) or type its id first."
        elif deleted:
            message = f"**Done:** deleted {paper_id}"
        else:
            message = f"**Problem:** no paper with id {paper_id}"
        return (message, *self.list_papers(query, sort, page), "", gr.Row(visible=False))
