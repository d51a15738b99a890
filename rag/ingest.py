"""Ingest files into the index and say exactly what happened to each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from rag.formats import FormatError, RecordLimits, expand_paths, parse_file
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


def ingest_paths(
    index: PaperIndex, paths: Iterable[Path], progress: Progress | None = None
) -> IngestReport:
    """Parse every file first, then add the good papers; a bad file never stops the others."""
    files, missing = expand_paths(paths)
    report = IngestReport(file_errors=missing)
    limits = RecordLimits.from_settings(index.settings)
    papers = []
    for path in files:
        try:
            parsed = parse_file(path, limits)
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
        if not parsed.papers:
            report.refused.append(path)
            if not parsed.bad_lines:
                report.file_errors.append(f"{path}: no papers found")
        papers.extend(parsed.papers)
    if papers:
        records = len(papers)
        papers = resolve_same_papers(index, papers)  # one record per paper across sources
        report.enriched = enrich_stored(index, papers)
        result = index.add_papers(papers, progress=progress)
        report.added, report.duplicates = result.added, records - result.added
        report.notes.extend(result.notes)
    report.total_papers = index.paper_count()
    return report
