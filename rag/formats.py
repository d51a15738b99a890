"""Readers for every input format, chosen per file by content, not trust in the name.

Formats: the scraped "daily papers" page text (header lines, then alternating
title line / abstract line), JSONL / JSONL.gz (arXiv metadata snapshot, BEIR
corpus, or anything with title + abstract/text), CSV with the same columns, and
PDF. A whole-file problem raises `FormatError` with a one-line message; bad
records inside an otherwise good file are returned with their line numbers so
the good ones still get ingested.

Records are checked strictly, field by field: a title or abstract must be text,
authors a string or a list of names, a year a number or a date, an id a string
or a number. A wrong type refuses that record (with its line number) instead of
storing a Python repr. Invalid UTF-8 refuses only the lines it occurs on.
Control characters are removed from every stored field, and only http(s) URLs
are kept as links (anything else, e.g. `javascript:`, is dropped silently and
the record keeps its arXiv link when its id has one). Oversized records are
refused against `RecordLimits` (settings max_abstract_chars, max_title_chars).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
import re
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rag.papers import Paper, paper_url, strip_controls, title_id


class FormatError(ValueError):
    """A file that cannot be read as any supported format (message is one line)."""


class RecordError(ValueError):
    """One record that cannot become a paper (message names the field or the limit)."""


@dataclass(frozen=True)
class RecordLimits:
    """Size bounds per record, so one huge line cannot become hours of embedding."""

    max_abstract_chars: int = 20_000
    max_title_chars: int = 1_000

    @classmethod
    def from_settings(cls, settings) -> "RecordLimits":
        return cls(settings.max_abstract_chars, settings.max_title_chars)


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
    """Return 'pdf', 'jsonl', 'csv', 'seed' or a reference-manager format, or raise FormatError."""
    from rag.refformats import sniff_reference_format

    reference = sniff_reference_format(path)
    if reference:
        return reference
    head = _read_head(path)
    if not head.strip():
        raise FormatError(f"{path}: empty file")
    if head.startswith(b"%PDF-"):
        return "pdf"
    if b"\x00" in head:
        raise FormatError(f"{path}: binary file, not a supported format (PDF, JSONL, CSV, text)")
    text = head.decode("utf-8", errors="replace")
    if text.count("\ufffd") > len(text) // 20:  # a few bad bytes are reported per line
        raise FormatError(f"{path}: not UTF-8 text and not a PDF")
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


def parse_seed_page(path: Path, text: str, damaged: bool = False) -> ParsedFile:
    """Header lines up to the date line, then alternating title / abstract lines.

    `damaged`: the file had invalid UTF-8 (U+FFFD marks it); such pairs are refused."""
    text = strip_controls(text)
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
        if damaged and "\ufffd" in title + abstract:
            parsed.bad_lines.append((start + offset + 1, "not valid UTF-8"))
            continue
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


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _clean(text: str) -> str:
    """One line of text: control characters removed, whitespace collapsed."""
    return " ".join(strip_controls(text).split())


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"'{name}' must be text, not {_type_name(value)}")
    return _clean(value)


NAME_PARTS = ("first", "given", "middle", "last", "family", "suffix")


def _author_name(item: Any) -> str:
    """One author: a string, arXiv's [last, first, suffix] list, or a dict with a name."""
    if isinstance(item, str):
        return _clean(item)
    if isinstance(item, list) and all(isinstance(part, str) for part in item):
        return _clean(" ".join(reversed(item)))
    if isinstance(item, dict):
        if isinstance(item.get("name"), str):
            return _clean(item["name"])
        parts = [item.get(key) for key in NAME_PARTS if item.get(key) not in (None, "")]
        if parts and all(isinstance(part, str) for part in parts):
            return _clean(" ".join(parts))
    raise RecordError(f"'authors' entries must be names, not {_type_name(item)}")


def _authors(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, list):
        return ", ".join(name for name in map(_author_name, value) if name)
    raise RecordError(f"'authors' must be a string or a list of names, not {_type_name(value)}")


def _year(record: dict[str, Any]) -> int:
    value = _first(record, "year", "date", "published", "update_date")
    if value is None and isinstance(record.get("versions"), list) and record["versions"]:
        first = record["versions"][0]
        value = first.get("created") if isinstance(first, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
        raise RecordError(f"'year' must be a number or a date, not {_type_name(value)}")
    if isinstance(value, (int, float)):  # 0, -1, NaN: "unknown" in many exports
        return int(value) if math.isfinite(value) and 1000 <= value <= 2999 else 0
    match = YEAR.search(value) if value is not None else None
    if match:
        return int(match.group(0))
    arxiv_new_style = re.match(r"^(\d{2})(\d{2})\.\d{4,5}", str(record.get("id", "")))
    return 2000 + int(arxiv_new_style.group(1)) if arxiv_new_style else 0


def _given_id(record: dict[str, Any]) -> str:
    value = _first(record, "id", "_id", "paper_id")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(f"'id' must be a string or a number, not {_type_name(value)}")
    return _clean(str(value))


def _categories(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return _clean(" ".join(value))
    return _text(value, "categories")


def _link(value: Any) -> str:
    """Only http(s) URLs become links; anything else is dropped (documented above)."""
    url = _clean(value) if isinstance(value, str) else ""
    return url if re.match(r"^https?://[^\s/]+", url, re.I) else ""


def paper_from_record(
    record: dict[str, Any], source: str, limits: RecordLimits = RecordLimits()
) -> Paper:
    """Map one JSON/CSV record onto a Paper; raise RecordError naming what is wrong."""
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    merged = {**metadata, **record}
    title = _text(_first(merged, "title"), "title")
    abstract = _text(_first(merged, "abstract", "text"), "abstract")
    if not title and not abstract:
        raise RecordError("no title and no abstract/text")
    if not abstract:
        raise RecordError("no abstract/text")
    if len(abstract) > limits.max_abstract_chars:
        raise RecordError(
            f"abstract/text has {len(abstract):,} characters, over the limit of "
            f"{limits.max_abstract_chars:,} (setting max_abstract_chars)"
        )
    if len(title) > limits.max_title_chars:
        raise RecordError(
            f"title has {len(title):,} characters, over the limit of "
            f"{limits.max_title_chars:,} (setting max_title_chars)"
        )
    paper_id = _given_id(merged) or title_id(title or abstract[:200])
    return Paper(
        id=paper_id,
        title=title or abstract[:120],
        abstract=abstract,
        authors=_authors(_first(merged, "authors", "author")),
        year=_year(merged),
        url=paper_url(paper_id, _link(_first(merged, "url"))),
        categories=_categories(_first(merged, "categories")),
        source=source,
    )


def _decode_error(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1})"


def _jsonl_papers(
    lines: Iterable[bytes], source: str, limits: RecordLimits, bad_lines: list[tuple[int, str]]
) -> Iterator[Paper]:
    """Papers of JSONL lines, one at a time; skipped records go to bad_lines as they come."""
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_lines.append((number, _decode_error(exc)))
            continue
        if number == 1:
            line = line.lstrip("\ufeff")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad_lines.append((number, f"invalid JSON ({exc.msg})"))
            continue
        except RecursionError:
            bad_lines.append((number, "invalid JSON (nested too deeply)"))
            continue
        if not isinstance(record, dict):
            bad_lines.append((number, "not a JSON object"))
            continue
        try:
            yield paper_from_record(record, source, limits)
        except RecordError as exc:
            bad_lines.append((number, str(exc)))


def _stream_jsonl(
    path: Path, limits: RecordLimits, bad_lines: list[tuple[int, str]]
) -> Iterator[Paper]:
    """A JSONL(.gz) file's papers, read line by line: memory stays one record's worth."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            yield from _jsonl_papers(handle, str(path), limits, bad_lines)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        bad_lines.append((0, f"file truncated or corrupt ({exc})"))


def parse_jsonl(path: Path, limits: RecordLimits = RecordLimits()) -> ParsedFile:
    parsed = ParsedFile(path=path, format="jsonl")
    parsed.papers = list(_stream_jsonl(path, limits, parsed.bad_lines))
    return parsed


def _decode_lenient(data: bytes, encoding: str = "utf-8") -> tuple[str, bool]:
    """Text and whether any bytes were invalid (then U+FFFD marks where)."""
    try:
        return data.decode(encoding), False
    except UnicodeDecodeError:
        return data.decode(encoding, errors="replace"), True


def parse_csv(path: Path, limits: RecordLimits = RecordLimits()) -> ParsedFile:
    parsed = ParsedFile(path=path, format="csv")
    text, damaged = _decode_lenient(path.read_bytes(), "utf-8-sig")
    dialect = "excel-tab" if path.name.lower().endswith(".tsv") else "excel"
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    try:
        columns = {name.strip().lower() for name in reader.fieldnames or []}
    except csv.Error as exc:
        raise FormatError(f"{path}: unreadable CSV header ({exc})") from None
    if "title" not in columns or not columns & {"abstract", "text"}:
        raise FormatError(f"{path}: CSV needs a 'title' and an 'abstract' or 'text' column")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.bad_lines.append((reader.line_num, f"unreadable CSV row ({exc})"))
            continue
        values = [value for value in row.values() if isinstance(value, str)]
        if damaged and any("\ufffd" in value for value in values):
            parsed.bad_lines.append((reader.line_num, "not valid UTF-8"))
            continue
        record = {
            key.strip().lower(): value for key, value in row.items() if isinstance(key, str)
        }
        try:
            parsed.papers.append(paper_from_record(record, str(path), limits))
        except RecordError as exc:
            parsed.bad_lines.append((reader.line_num, str(exc)))
    return parsed


def parse_pdf(path: Path) -> ParsedFile:
    """One paper per PDF, read page by page with located passages (rag/pdf.py)."""
    from rag.pdf import PdfError, parse_pdf_paper

    try:
        return ParsedFile(path=path, format="pdf", papers=[parse_pdf_paper(path)])
    except PdfError as exc:
        raise FormatError(str(exc)) from None


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs and warns about damaged files on stderr; the `error:` line says it all."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def parse_file(path: Path, limits: RecordLimits = RecordLimits()) -> ParsedFile:
    """Read one file in whatever supported format it holds."""
    from rag.refformats import READERS

    kind = detect_format(path)
    if kind in READERS:
        return READERS[kind](path)
    if kind == "pdf":
        with _quiet_pypdf():
            return parse_pdf(path)
    if kind == "jsonl":
        return parse_jsonl(path, limits)
    if kind == "csv":
        return parse_csv(path, limits)
    text, damaged = _decode_lenient(path.read_bytes())
    return parse_seed_page(path, text, damaged)


def stream_file(
    path: Path, limits: RecordLimits = RecordLimits()
) -> tuple[ParsedFile, Iterator[Paper]]:
    """One file's papers one at a time, for ingest in bounded batches.

    JSONL (gzip too) is read line by line, so any size costs one record's memory;
    the other formats are small by nature and parsed whole. Raises FormatError now
    when the file is no supported format; the returned ParsedFile (papers left empty)
    collects the skipped records' lines while the iterator runs.
    """
    if detect_format(path) == "jsonl":
        parsed = ParsedFile(path=path, format="jsonl")
        return parsed, _stream_jsonl(path, limits, parsed.bad_lines)
    parsed = parse_file(path, limits)
    papers, parsed.papers = parsed.papers, []
    return parsed, iter(papers)


def count_records(path: Path) -> int:
    """About how many papers a file holds, cheaply (non-blank lines of a JSONL file, one
    per PDF): the total a progress bar counts towards before anything is parsed."""
    try:
        kind = detect_format(path)
        if kind == "pdf":
            return 1
        if kind != "jsonl":
            return len(parse_file(path).papers)
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except (FormatError, OSError, EOFError, zlib.error):
        return 0


SUPPORTED_SUFFIXES = (
    ".txt", ".jsonl", ".jsonl.gz", ".ndjson", ".json", ".csv", ".tsv", ".pdf", ".bib", ".ris"
)  # fmt: skip


def expand_paths(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Files named, plus the supported files inside named directories (sorted, recursive),
    and one error line per path that does not exist."""
    files: list[Path] = []
    missing: list[str] = []
    for path in paths:
        if (path / "zotero.sqlite").is_file():  # a Zotero data directory is one library
            files.append(path)
        elif path.is_dir():
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
