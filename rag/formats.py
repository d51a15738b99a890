"""Readers for every input format, chosen per file by content, not trust in the name.

Formats: the scraped "daily papers" page text (header lines, then alternating
title line / abstract line), JSONL / JSONL.gz (arXiv metadata snapshot, BEIR
corpus, or anything with title + abstract/text), CSV with the same columns, and
PDF. A whole-file problem raises `FormatError` with a one-line message; bad
records inside an otherwise good file are returned with their line numbers so
the good ones still get ingested.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rag.papers import Paper, paper_url, title_id


class FormatError(ValueError):
    """A file that cannot be read as any supported format (message is one line)."""


@dataclass
class ParsedFile:
    """Papers read from one file, plus the records that had to be skipped."""

    path: Path
    format: str
    papers: list[Paper] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


SNIFF_BYTES = 64 * 1024
DATE_LINE = re.compile(
    r"^(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}(?:, \d{4})?$"
)
MAX_TITLE_CHARS = 400
MAX_HEADER_LINES = 12
YEAR = re.compile(r"(19|20)\d{2}")


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if path.name.endswith(".gz") and head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as handle:
            try:
                return handle.read(SNIFF_BYTES)
            except (OSError, EOFError) as exc:
                raise FormatError(f"{path}: corrupt gzip file ({exc})") from None
    return head


def detect_format(path: Path) -> str:
    """Return 'pdf', 'jsonl', 'csv' or 'seed' for a file, or raise FormatError."""
    head = _read_head(path)
    if not head.strip():
        raise FormatError(f"{path}: empty file")
    if head.startswith(b"%PDF-"):
        return "pdf"
    if b"\x00" in head:
        raise FormatError(f"{path}: binary file, not a supported format (PDF, JSONL, CSV, text)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte char cut by the sniff window
            raise FormatError(f"{path}: not UTF-8 text and not a PDF") from None
        text = head[: exc.start].decode("utf-8")
    stripped = text.lstrip("\ufeff \t\r\n")
    name = path.name.lower()
    if stripped.startswith("{") or name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if _looks_like_seed_page(text):
        return "seed"
    first_line = stripped.splitlines()[0].lower() if stripped else ""
    if "," in first_line and "title" in first_line:
        return "csv"
    raise FormatError(
        f"{path}: unknown format (expected a daily-papers page, JSONL, CSV or PDF)"
    )


def _nonblank_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _seed_body_start(lines: list[str]) -> int | None:
    """Index of the first title line: right after the page's date line."""
    for index, line in enumerate(lines[:MAX_HEADER_LINES]):
        if DATE_LINE.match(line):
            return index + 1
    return None


def _looks_like_seed_page(text: str) -> bool:
    lines = _nonblank_lines(text)
    start = _seed_body_start(lines)
    if start is None or len(lines) < start + 2:
        return False
    titles = lines[start::2][:10]
    return all(len(title) <= MAX_TITLE_CHARS for title in titles)


def parse_seed_page(path: Path, text: str) -> ParsedFile:
    """Header lines up to the date line, then alternating title / abstract lines."""
    lines = _nonblank_lines(text)
    start = _seed_body_start(lines)
    if start is None:
        raise FormatError(f"{path}: no date line found in the page header")
    body = lines[start:]
    parsed = ParsedFile(path=path, format="seed")
    if len(body) % 2:
        parsed.bad_lines.append((len(lines), "title without an abstract at end of page"))
        body = body[:-1]
    for offset in range(0, len(body), 2):
        title, abstract = body[offset], body[offset + 1]
        if len(title) > MAX_TITLE_CHARS or len(abstract) < len(title):
            raise FormatError(
                f"{path}: title/abstract alternation broken near non-blank line {start + offset + 1}"
            )
        parsed.papers.append(
            Paper(id=title_id(title), title=title, abstract=abstract, source=str(path))
        )
    return parsed


def _first(record: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = record.get(key)
        if value not in (None, "", []):
            return value
    return None


def _authors(value: Any) -> str:
    if isinstance(value, list):
        names = [
            " ".join(part for part in reversed(item) if part).strip()
            if isinstance(item, list)
            else str(item.get("name", "")) if isinstance(item, dict) else str(item)
            for item in value
        ]
        return ", ".join(name for name in names if name)
    return " ".join(str(value or "").split())


def _year(record: dict[str, Any]) -> int:
    value = _first(record, "year", "date", "published", "update_date")
    if value is None and record.get("versions"):
        first = record["versions"][0]
        value = first.get("created") if isinstance(first, dict) else None
    match = YEAR.search(str(value)) if value is not None else None
    if match:
        return int(match.group(0))
    arxiv_new_style = re.match(r"^(\d{2})(\d{2})\.\d{4,5}", str(record.get("id", "")))
    return 2000 + int(arxiv_new_style.group(1)) if arxiv_new_style else 0


def paper_from_record(record: dict[str, Any], source: str) -> Paper:
    """Map one JSON/CSV record onto a Paper; raise ValueError naming what is missing."""
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    merged = {**metadata, **record}
    title = " ".join(str(_first(merged, "title") or "").split())
    abstract = " ".join(str(_first(merged, "abstract", "text") or "").split())
    if not title and not abstract:
        raise ValueError("no title and no abstract/text")
    if not abstract:
        raise ValueError("no abstract/text")
    given_id = _first(merged, "id", "_id", "paper_id")
    paper_id = str(given_id) if given_id is not None else title_id(title or abstract[:200])
    categories = _first(merged, "categories")
    if isinstance(categories, list):
        categories = " ".join(str(item) for item in categories)
    return Paper(
        id=paper_id,
        title=title or abstract[:120],
        abstract=abstract,
        authors=_authors(_first(merged, "authors", "author")),
        year=_year(merged),
        url=paper_url(paper_id, str(_first(merged, "url") or "")),
        categories=str(categories or ""),
        source=source,
    )


def _records_from_jsonl(lines: Iterable[str], parsed: ParsedFile) -> None:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            parsed.bad_lines.append((number, f"invalid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            parsed.bad_lines.append((number, "not a JSON object"))
            continue
        try:
            parsed.papers.append(paper_from_record(record, str(parsed.path)))
        except ValueError as exc:
            parsed.bad_lines.append((number, str(exc)))


def parse_jsonl(path: Path) -> ParsedFile:
    parsed = ParsedFile(path=path, format="jsonl")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="strict") as handle:
            _records_from_jsonl(handle, parsed)
    except (EOFError, gzip.BadGzipFile) as exc:
        parsed.bad_lines.append((0, f"file truncated or corrupt ({exc})"))
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not UTF-8 text") from None
    return parsed


def parse_csv(path: Path) -> ParsedFile:
    parsed = ParsedFile(path=path, format="csv")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    dialect = "excel-tab" if path.name.lower().endswith(".tsv") else "excel"
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    columns = {name.strip().lower() for name in reader.fieldnames or []}
    if "title" not in columns or not columns & {"abstract", "text"}:
        raise FormatError(f"{path}: CSV needs a 'title' and an 'abstract' or 'text' column")
    for row in reader:
        record = {key.strip().lower(): value for key, value in row.items() if key}
        try:
            parsed.papers.append(paper_from_record(record, str(path)))
        except ValueError as exc:
            parsed.bad_lines.append((reader.line_num, str(exc)))
    return parsed


def parse_pdf(path: Path) -> ParsedFile:
    """One paper per PDF, read page by page with located passages (rag/pdf.py)."""
    from rag.pdf import PdfError, parse_pdf_paper

    try:
        return ParsedFile(path=path, format="pdf", papers=[parse_pdf_paper(path)])
    except PdfError as exc:
        raise FormatError(str(exc)) from None


def parse_file(path: Path) -> ParsedFile:
    """Read one file in whatever supported format it holds."""
    kind = detect_format(path)
    if kind == "pdf":
        return parse_pdf(path)
    if kind == "jsonl":
        return parse_jsonl(path)
    if kind == "csv":
        return parse_csv(path)
    return parse_seed_page(path, path.read_text(encoding="utf-8", errors="replace"))


SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".jsonl.gz", ".ndjson", ".json", ".csv", ".tsv", ".pdf")


def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Files named, plus the supported files inside named directories (sorted, recursive),
    and one error line per path that does not exist."""
    files: list[Path] = []
    missing: list[str] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    child
                    for child in path.rglob("*")
                    if child.is_file()
                    and not child.name.startswith(".")
                    and child.name.lower().endswith(SUPPORTED_SUFFIXES)
                )
            )
        elif path.exists():
            files.append(path)
        else:
            missing.append(f"{path}: no such file or directory")
    return files, missing
