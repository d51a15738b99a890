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

log = logging.getLogger(__name__)

COLUMNS = ["id", "title", "year", "authors", "categories", "source"]
MAX_ROWS = 500  # rows shown at once; searching narrows the list
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


def paper_rows(papers: Sequence[Paper], query: str = "", limit: int = MAX_ROWS) -> list[list]:
    """Table rows of the papers matching `query` (id, title or authors), at most `limit`."""
    rows = []
    for paper in papers:
        if query.strip() and not paper_matches(paper, query.strip()):
            continue
        rows.append([
            paper.id, paper.title, paper.year or "", paper.authors[:120], paper.categories,
            Path(paper.source).name if paper.source else "",
        ])  # fmt: skip
        if len(rows) >= limit:
            break
    return rows


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
                    label=f"Upload papers (PDF, JSONL(.gz), CSV, text; ≤ {limit} MB each)",
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
        self.table = gr.Dataframe(
            headers=COLUMNS, value=[], interactive=False, wrap=True, elem_id="paper-table",
            max_height=520, label="Papers",
        )  # fmt: skip

    def wire(self, tab: gr.Tab) -> None:
        """Listing scans every paper, so it runs when the tab is opened, not on page load."""
        listing = [self.stats, self.table]
        tab.select(self.list_papers, [self.search], listing)
        self.search.submit(self.list_papers, [self.search], listing)
        self.refresh.click(self.list_papers, [self.search], listing)
        self.ingest.click(
            self.ingest_files, [self.files, self.search], [self.report, *listing, self.files],
            concurrency_limit=1, concurrency_id=INDEX_WRITES,
        )  # fmt: skip
        self.table.select(self.select_row, None, self.selected)
        self.delete.click(
            self.delete_paper, [self.selected, self.search], [self.report, *listing, self.selected],
            concurrency_limit=1, concurrency_id=INDEX_WRITES,
        )  # fmt: skip

    def list_papers(self, query: str = "") -> tuple[str, list[list]]:
        papers = list(self.index.iter_papers())
        return corpus_stats(self.index, papers), paper_rows(papers, query or "")

    @staticmethod
    def select_row(event: gr.SelectData) -> str:
        row = event.row_value or []
        return str(row[0]) if row else ""

    def ingest_files(self, files: list[str] | None, query: str, progress=gr.Progress()):
        if not files:
            return ("Choose one or more files first.", *self.list_papers(query), None)
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

            def embedded(done: int, total: int) -> None:
                progress(done / max(total, 1), desc=f"embedded {done}/{total} papers")

            try:
                report = ingest_paths(self.index, accepted, progress=embedded)
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
        return ("  \n".join(lines), *self.list_papers(query), None)

    def delete_paper(self, paper_id: str, query: str):
        paper_id = (paper_id or "").strip()
        try:
            deleted = bool(paper_id) and self.index.delete_paper(paper_id)
        except IndexBusyError as exc:
            return (f"**Problem:** {exc}", *self.list_papers(query), paper_id)
        if not paper_id:
            message = "Select a paper (click its row) or type its id first."
        elif deleted:
            message = f"**Done:** deleted {paper_id}"
        else:
            message = f"**Problem:** no paper with id {paper_id}"
        return (message, *self.list_papers(query), "")
