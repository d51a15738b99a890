"""Reference-manager libraries as papers: BibTeX, RIS, CSL-JSON and a Zotero data directory.

What researchers already keep in Zotero, Mendeley or JabRef comes in without
retyping: the abstract from the record, authors and year as the manager has
them, the id from the DOI, else the arXiv id, else the title (see
rag.identity), and the full text of an attached PDF when the attachment is
there to read (through the same PDF reader as a dropped-in PDF; the paper's
`source` is then the PDF, so it can be opened at a cited page). A record
with neither an abstract nor a readable PDF has nothing to retrieve and is
reported as a bad record; the others are ingested.

Parsing is done by bibtexparser (v2), rispy and sqlite3; this module maps
their records onto `Paper`. A Zotero database is never opened in place:
Zotero holds it locked while running, and a reader must not disturb it, so
`zotero.sqlite` is copied to a temporary file first.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from rag.formats import YEAR, FormatError, ParsedFile
from rag.identity import arxiv_id, bare_doi, paper_id
from rag.papers import Paper

REFERENCE_SUFFIXES = (".bib", ".ris")
ZOTERO_DB = "zotero.sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"
RIS_START = re.compile(r"^TY  - ", re.M)
BIBTEX_START = re.compile(r"^\s*@[A-Za-z]+\s*[{(]", re.M)
NO_TEXT = "no abstract and no readable PDF attachment"


def _clean(text: Any) -> str:
    return " ".join(str(text or "").split())


def sniff_reference_format(path: Path) -> str | None:
    """'zotero', 'bibtex', 'ris' or 'csl-json' when the path holds one, else None.

    Judged by content (the name only breaks ties), like every other format.
    """
    if path.is_dir():
        return "zotero" if (path / ZOTERO_DB).is_file() else None
    try:
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
    except OSError:
        return None  # the caller's own read reports the problem
    if head.startswith(SQLITE_MAGIC):
        return "zotero" if path.name == ZOTERO_DB else None
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    name = path.name.lower()
    if RIS_START.match(text) or (name.endswith(".ris") and RIS_START.search(text)):
        return "ris"
    if BIBTEX_START.search(text) and (name.endswith(".bib") or text.startswith(("@", "%"))):
        return "bibtex"
    jsonl_name = name.endswith((".jsonl", ".jsonl.gz", ".ndjson"))
    if text.startswith("[") and text[1:].lstrip().startswith("{") and not jsonl_name:
        return "csl-json"  # an array of item objects; JSON Lines files stay JSON Lines
    return None


def _with_pdf(paper: Paper, pdf: Path | None) -> Paper:
    """The record's paper with the full text of its PDF, when there is one to read.

    The record's metadata wins over what is guessed from the PDF; the PDF's own
    abstract is used only when the record has none.
    """
    if pdf is None:
        if not paper.abstract:
            raise ValueError(NO_TEXT)
        return paper
    from rag.formats import parse_file

    try:
        parsed = parse_file(pdf).papers
    except (FormatError, OSError):
        parsed = []
    if not parsed:
        if not paper.abstract:
            raise ValueError(f"no abstract, and the attached PDF {pdf.name} is unreadable")
        return paper
    text = parsed[0]
    return dataclasses.replace(
        text,
        id=paper.id, title=paper.title or text.title, abstract=paper.abstract or text.abstract,
        authors=paper.authors or text.authors, year=paper.year or text.year,
        url=paper.url or text.url, doi=paper.doi or text.doi, categories=paper.categories,
        source=str(pdf),
    )  # fmt: skip


def make_paper(
    *, title: str, abstract: str, authors: Iterable[str], year: Any, doi: str, url: str,
    arxiv_hints: Iterable[str], source: str, pdf: Path | None = None,
) -> Paper:  # fmt: skip
    """One record's fields as a Paper with its preferred id (raises ValueError when unusable)."""
    title, abstract = _clean(title), _clean(abstract)
    if not title:
        raise ValueError("no title")
    doi = bare_doi(doi)
    arxiv = arxiv_id(doi, url, *arxiv_hints)
    year_match = YEAR.search(str(year or ""))
    ident = paper_id(doi, arxiv, title)
    paper = Paper(
        id=ident,
        title=title,
        abstract=abstract,
        authors=", ".join(name for name in (_clean(a) for a in authors) if name),
        year=int(year_match.group(0)) if year_match else 0,
        url=url or (f"https://doi.org/{doi}" if doi and ident == doi else "")
        or (f"https://arxiv.org/abs/{arxiv}" if arxiv else ""),
        doi=doi,
        source=source,
    )
    return _with_pdf(paper, pdf)


def _existing_file(candidate: str, base: Path) -> Path | None:
    """An attachment path as written in a reference file, if it names a readable PDF."""
    candidate = candidate.strip()
    if candidate.lower().startswith("file:"):
        candidate = unquote(urlparse(candidate).path)
    if not candidate.lower().endswith(".pdf"):
        return None
    path = Path(candidate).expanduser()
    path = path if path.is_absolute() else base / path
    return path if path.is_file() else None


def attachment_pdf(value: str, base: Path) -> Path | None:
    """The first readable PDF named by a `file` field (BibTeX) or an L1 line (RIS).

    Managers write `path`, `description:path:mime` (Zotero, JabRef, Mendeley)
    or `file://` URLs, several joined by ';'; relative paths are relative to
    the reference file's directory.
    """
    for entry in filter(None, (part.strip() for part in (value or "").split(";"))):
        for candidate in (entry, *entry.split(":")):
            found = _existing_file(candidate, base)
            if found:
                return found
    return None


# --- BibTeX ---------------------------------------------------------------------------
def parse_bibtex(path: Path) -> ParsedFile:
    import bibtexparser
    from bibtexparser.middlewares import SeparateCoAuthors, SplitNameParts
    from pylatexenc.latex2text import LatexNodes2Text

    text = path.read_text(encoding="utf-8-sig", errors="replace")
    library = bibtexparser.parse_string(text, append_middleware=[SeparateCoAuthors(), SplitNameParts()])
    latex = LatexNodes2Text(math_mode="verbatim")  # what bibtexparser's decoding middleware uses
    parsed = ParsedFile(path=path, format="bibtex")
    for block in library.failed_blocks:
        line = (block.start_line or 0) + 1
        parsed.bad_lines.append((line, f"unparseable BibTeX block ({type(block.error).__name__})"))
    for entry in library.entries:
        fields = {key.lower(): value.value for key, value in entry.fields_dict.items()}

        def text_of(*keys: str) -> str:
            value = next((fields[key] for key in keys if fields.get(key)), "")
            return latex.latex_to_text(str(value)) if value else ""

        names = fields.get("author") or []
        try:
            parsed.papers.append(make_paper(
                title=text_of("title"), abstract=text_of("abstract"),
                authors=[latex.latex_to_text(n.merge_first_name_first) for n in names],
                year=fields.get("year") or fields.get("date"), doi=str(fields.get("doi", "")),
                url=str(fields.get("url", "")),
                arxiv_hints=[f"arXiv:{fields.get('eprint', '')}"
                             if str(fields.get("archiveprefix", "")).lower() == "arxiv" else "",
                             str(fields.get("journal", "")), str(fields.get("note", ""))],
                source=str(path), pdf=attachment_pdf(str(fields.get("file", "")), path.parent),
            ))  # fmt: skip
        except ValueError as exc:
            parsed.bad_lines.append(((entry.start_line or 0) + 1, f"{entry.key}: {exc}"))
    return parsed


# --- RIS ------------------------------------------------------------------------------
def _first_name_first(name: str) -> str:
    """'Smith, John' → 'John Smith' (RIS and Zotero keep last names first)."""
    from bibtexparser.middlewares.names import parse_single_name_into_parts

    try:
        return parse_single_name_into_parts(name, strict=False).merge_first_name_first
    except ValueError:
        return name


def parse_ris(path: Path) -> ParsedFile:
    import rispy

    text = path.read_text(encoding="utf-8-sig", errors="replace")
    starts = [text.count("\n", 0, match.start()) + 1 for match in RIS_START.finditer(text)]
    parsed = ParsedFile(path=path, format="ris")
    try:
        records = rispy.loads(text)
    except (ValueError, KeyError, TypeError) as exc:  # rispy's message names the bad line
        raise FormatError(f"{path}: not a readable RIS file ({' '.join(str(exc).split())})") from None
    for number, record in enumerate(records):
        line = starts[number] if number < len(starts) else number + 1
        urls = record.get("urls") or []
        attachments = ";".join(str(record.get(key, "")) for key in ("file_attachments1", "file_attachments2"))
        try:
            parsed.papers.append(make_paper(
                title=record.get("title") or record.get("primary_title") or "",
                abstract=record.get("abstract") or record.get("notes_abstract") or "",
                authors=[_first_name_first(a) for a in
                         record.get("authors") or record.get("first_authors") or []],
                year=record.get("year") or record.get("publication_year") or record.get("date"),
                doi=str(record.get("doi", "")), url=str(urls[0]) if urls else "",
                arxiv_hints=[*map(str, urls), str(record.get("journal_name", ""))],
                source=str(path), pdf=attachment_pdf(attachments, path.parent),
            ))  # fmt: skip
        except ValueError as exc:
            parsed.bad_lines.append((line, str(exc)))
    return parsed


# --- CSL-JSON -------------------------------------------------------------------------
def _csl_name(person: Any) -> str:
    if isinstance(person, dict):
        if person.get("literal"):
            return str(person["literal"])
        parts = (person.get("given"), person.get("non-dropping-particle"), person.get("family"))
        return " ".join(str(part) for part in parts if part)
    return str(person)


def _csl_year(record: dict) -> Any:
    issued = record.get("issued") or {}
    if isinstance(issued, dict):
        parts = issued.get("date-parts") or [[]]
        if parts and parts[0]:
            return parts[0][0]
        return issued.get("raw") or issued.get("literal")
    return issued or record.get("year")


def parse_csl_json(path: Path) -> ParsedFile:
    """A CSL-JSON array (Zotero/Mendeley "CSL JSON" export, pandoc, citeproc)."""
    try:
        records = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not UTF-8 text") from None
    if not isinstance(records, list):
        raise FormatError(f"{path}: CSL-JSON must be an array of items")
    parsed = ParsedFile(path=path, format="csl-json")
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            parsed.bad_lines.append((number, "not a JSON object"))
            continue
        authors = record.get("author") or record.get("authors") or []
        try:
            parsed.papers.append(make_paper(
                title=str(record.get("title", "")), abstract=str(record.get("abstract", "")),
                authors=[_csl_name(a) for a in authors] if isinstance(authors, list) else [authors],
                year=_csl_year(record), doi=str(record.get("DOI") or record.get("doi") or ""),
                url=str(record.get("URL") or record.get("url") or ""),
                arxiv_hints=[str(record.get(key, "")) for key in ("number", "note", "archive_location")],
                source=str(path),
            ))  # fmt: skip
        except ValueError as exc:
            parsed.bad_lines.append((number, str(exc)))
    return parsed


# --- Zotero data directory ------------------------------------------------------------
ITEMS_SQL = """
SELECT items.itemID, items.key FROM items JOIN itemTypes USING (itemTypeID)
WHERE itemTypes.typeName NOT IN ('attachment', 'note', 'annotation')
  AND items.itemID NOT IN (SELECT itemID FROM deletedItems)
ORDER BY items.itemID
"""
FIELDS_SQL = """
SELECT itemData.itemID, fields.fieldName, itemDataValues.value
FROM itemData JOIN fields USING (fieldID) JOIN itemDataValues USING (valueID)
"""
CREATORS_SQL = """
SELECT itemCreators.itemID, creators.firstName, creators.lastName, creatorTypes.creatorType
FROM itemCreators JOIN creators USING (creatorID) JOIN creatorTypes USING (creatorTypeID)
ORDER BY itemCreators.itemID, itemCreators.orderIndex
"""
PDFS_SQL = """
SELECT itemAttachments.parentItemID, items.key, itemAttachments.path
FROM itemAttachments JOIN items USING (itemID)
WHERE itemAttachments.contentType = 'application/pdf'
  AND itemAttachments.itemID NOT IN (SELECT itemID FROM deletedItems)
ORDER BY itemAttachments.itemID
"""


def _zotero_pdf(directory: Path, key: str, stored: str | None) -> Path | None:
    """Imported files live in storage/<attachment key>/<name> ("storage:<name>" in the
    database); linked files keep their absolute path."""
    if not stored:
        return None
    if stored.startswith("storage:"):
        path = directory / "storage" / key / stored.removeprefix("storage:")
    else:
        path = Path(stored)
    return path if path.is_file() and path.suffix.lower() == ".pdf" else None


def _read_zotero(connection: sqlite3.Connection, directory: Path, parsed: ParsedFile) -> None:
    fields: dict[int, dict[str, str]] = {}
    for item, name, value in connection.execute(FIELDS_SQL):
        fields.setdefault(item, {})[name] = str(value)
    creators: dict[int, list[tuple[str, str]]] = {}
    for item, first, last, kind in connection.execute(CREATORS_SQL):
        creators.setdefault(item, []).append((kind, " ".join(p for p in (first, last) if p)))
    pdfs: dict[int, Path] = {}
    standalone: list[Path] = []  # PDFs dropped into the library without a parent item
    for parent, key, stored in connection.execute(PDFS_SQL):
        found = _zotero_pdf(directory, key, stored)
        if found and parent is None:
            standalone.append(found)
        elif found and parent not in pdfs:
            pdfs[parent] = found
    for item, _key in connection.execute(ITEMS_SQL).fetchall():
        data = fields.get(item, {})
        people = creators.get(item, [])
        authors = [name for kind, name in people if kind == "author"] or [n for _, n in people]
        try:
            parsed.papers.append(make_paper(
                title=data.get("title", ""), abstract=data.get("abstractNote", ""), authors=authors,
                year=data.get("date"), doi=data.get("DOI", ""), url=data.get("url", ""),
                arxiv_hints=[data.get(k, "") for k in ("archiveID", "extra", "number", "publicationTitle")],
                source=str(directory / ZOTERO_DB), pdf=pdfs.get(item),
            ))  # fmt: skip
        except ValueError as exc:
            parsed.bad_lines.append((item, f"item {item}: {exc}"))
    from rag.formats import parse_file

    for pdf in standalone:
        try:
            parsed.papers.extend(parse_file(pdf).papers)
        except (FormatError, OSError) as exc:
            parsed.bad_lines.append((0, f"{pdf.name}: {exc}"))


def parse_zotero(path: Path) -> ParsedFile:
    """A Zotero data directory (or its zotero.sqlite), read from a private copy of the database."""
    directory = path if path.is_dir() else path.parent
    parsed = ParsedFile(path=path, format="zotero")
    with tempfile.TemporaryDirectory(prefix="rag-zotero-") as scratch:
        copy = Path(scratch) / ZOTERO_DB
        shutil.copyfile(directory / ZOTERO_DB, copy)
        journal = directory / f"{ZOTERO_DB}-wal"  # uncheckpointed writes, if Zotero uses WAL
        if journal.is_file():
            shutil.copyfile(journal, Path(scratch) / journal.name)
        connection = sqlite3.connect(copy)
        try:
            _read_zotero(connection, directory, parsed)
        except sqlite3.DatabaseError as exc:
            raise FormatError(f"{path}: not a readable Zotero database ({exc})") from None
        finally:
            connection.close()
    return parsed


READERS: dict[str, Callable[[Path], ParsedFile]] = {
    "bibtex": parse_bibtex,
    "ris": parse_ris,
    "csl-json": parse_csl_json,
    "zotero": parse_zotero,
}
