"""Ingest files into the index and say exactly what happened to each."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.formats import FormatError, RecordLimits, count_records, expand_paths, stream_file
from rag.identity import resolve_same_papers
from rag.index import PaperIndex, Progress
from rag.papers import Paper


@dataclass
class IngestReport:
    """What an ingest run did: counts for the summary, problems for the error lines."""

    added: int = 0
    duplicates: int = 0
    total_papers: int = 0
    files: int = 0
    file_errors: list[str] = field(default_factory=list)
    bad_lines: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    refused: list[Path] = field(default_factory=list)
    """Files from which nothing could be read (the UI does not keep such uploads)."""
    notes: list[str] = field(default_factory=list)
    """Things done to accepted papers that the user should know (e.g. a chunk cap)."""
    enriched: int = 0
    """Papers already stored whose blank metadata (authors, year, DOI…) this run filled in."""
    records: int = 0
    """Good records read (a paper met twice counts twice; `duplicates` is records - added)."""

    @property
    def ok(self) -> bool:
        return not self.file_errors and not self.bad_lines

    def summary(self) -> str:
        enriched = f", enriched {self.enriched} stored paper(s)" if self.enriched else ""
        return (
            f"added {self.added}, skipped {self.duplicates} duplicate(s){enriched}, "
            f"total {self.total_papers} papers ({self.files} file(s) read)"
        )

    def problems(self) -> list[str]:
        """One line per problem: a bad file, or a file's bad line numbers."""
        lines = list(self.file_errors)
        for path, bad in self.bad_lines.items():
            numbers = ", ".join(str(number) for number, _ in bad[:20])
            more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
            lines.append(
                f"{path}: skipped {len(bad)} bad record(s) at line(s) {numbers}{more} "
                f"(first: {bad[0][1]})"
            )
        return lines


def enrich_stored(index: PaperIndex, papers: list[Paper]) -> int:
    """Fill the blank metadata of papers the index already holds from these records of
    them (a .bib imported after the PDF: authors, year, DOI); returns how many changed."""
    stored = index.existing_ids([paper.id for paper in papers])
    return len(index.enrich_papers([p for p in papers if p.id in stored])) if stored else 0


def progress_line(done: int, total: int, elapsed_s: float) -> str:
    """Ingest progress as one plain line, e.g. '1,200/50,000 papers, 24.1/s, ETA 33m 52s':
    what the CLI prints when stderr is no terminal (CI logs) and the UI's bar shows."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    text = f"{done:,}/{total:,} papers"
    if rate > 0:
        text += f", {rate:.1f}/s"
        if total > done:
            eta = round((total - done) / rate)
            text += f", ETA {eta // 3600}h {eta // 60 % 60:02d}m" if eta >= 3600 else (
                f", ETA {eta // 60}m {eta % 60:02d}s")  # fmt: skip
    return text


class ProgressReporter:
    """A `progress(done, total)` callback for ingest_paths that tells a display the count
    and its plain line (rate and ETA over the run so far): one source for the CLI
    and the UI. `show(done, total, line)` draws it."""

    def __init__(self, show: Callable[[int, int, str], None]):
        self.show = show
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        self.show(done, total, progress_line(done, total, time.monotonic() - self.started))


def ingest_paths(
    index: PaperIndex, paths: Iterable[Path], progress: Progress | None = None
) -> IngestReport:
    """Stream every file's papers into the index in bounded batches; a bad file never
    stops the others.

    Records are read lazily (JSONL line by line), grouped into batches of
    `ingest_batch_papers`, resolved to the ids the index already uses (rag/identity.py,
    across the batches of this run too), then embedded while the previous batch is
    written (PaperIndex.add_batches), so memory stays flat in the size of the input.
    `progress(done, total)` counts records towards the number the files hold; the
    count (one quick pass over the files: 0.6 s for 50k gzipped abstracts) also tells
    add_batches that more than one batch is coming, so it embeds in a child process
    from the first batch on.
    """
    files, missing = expand_paths(paths)
    report = IngestReport(file_errors=missing)
    limits = RecordLimits.from_settings(index.settings)
    total = sum(count_records(path) for path in files)
    earlier: dict[str, str] = {}  # identity keys of this run's papers -> their ids

    def batches() -> Iterator[list[Paper]]:
        size = index.settings.ingest_batch_papers
        batch: list[Paper] = []
        for paper in _papers(files, limits, report):
            batch.append(paper)
            if len(batch) >= size:
                yield resolved(batch)
                batch = []
        if batch:
            yield resolved(batch)

    def resolved(batch: list[Paper]) -> list[Paper]:
        """One record per paper, under the ids the index uses; stored ones enriched."""
        papers = resolve_same_papers(index, batch, earlier)
        report.enriched += enrich_stored(index, papers)
        return papers

    result = index.add_batches(batches(), progress=progress, total=total)
    report.added = result.added
    report.duplicates = report.records - result.added
    report.notes.extend(result.notes)
    report.total_papers = index.paper_count()
    return report


def _papers(files: list[Path], limits: RecordLimits, report: IngestReport) -> Iterator[Paper]:
    """Every good record of every file, one at a time; file problems go to the report."""
    for path in files:
        count = 0
        try:
            parsed, papers = stream_file(path, limits)
            for paper in papers:
                count += 1
                report.records += 1
                yield paper
        except FormatError as exc:
            report.file_errors.append(str(exc))
            report.refused.append(path)
            continue
        except OSError as exc:
            report.file_errors.append(f"{path}: cannot read ({exc.strerror or exc})")
            report.refused.append(path)
            continue
        report.files += 1
        if parsed.bad_lines:
            report.bad_lines[str(path)] = parsed.bad_lines
        if not count:
            report.refused.append(path)
            if not parsed.bad_lines:
                report.file_errors.append(f"{path}: no papers found")
