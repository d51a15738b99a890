"""The paper record every stage passes around, and how papers get stable ids."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0/C1 controls (ESC starts terminal escape sequences) and bidi overrides; tab and
newline are kept for callers that split on whitespace."""


def strip_controls(text: str) -> str:
    """Text with control characters removed: safe to store, and to echo to a terminal."""
    return CONTROL_CHARS.sub("", text)


ARXIV_ID = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(v\d+)?$", re.I)


def normalise_title(title: str) -> str:
    """Lower-case, accent-free, punctuation-free title: the key that merges duplicates."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def title_id(title: str) -> str:
    """A stable id for a paper that came without one: same title, same id, on any machine."""
    digest = hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()
    return f"t-{digest[:12]}"


def paper_url(paper_id: str, given_url: str = "") -> str:
    """A link a reader can open: the given URL, else arXiv's abstract page for arXiv ids."""
    if given_url:
        return given_url
    match = ARXIV_ID.match(paper_id.strip())
    return f"https://arxiv.org/abs/{match.group(1)}" if match else ""


@dataclass(frozen=True)
class Passage:
    """A located piece of a paper's text: the unit evidence is selected and cited from.

    The abstract is one passage (location "abstract"); long documents add body
    passages with the page they start on (PDFs) and the section when known, so a
    citation can point at `[2, p. 7]` and a reader can open the page.
    """

    text: str
    kind: str = "abstract"  # "abstract" or "body"
    page: int | None = None  # 1-based PDF page the passage starts on
    section: str = ""  # section heading when the source document has one

    @property
    def location(self) -> str:
        """Human-readable place in the paper: "abstract", "p. 7", "§ Results, p. 7"."""
        if self.kind == "abstract":
            return "abstract"
        parts = [f"§ {self.section}" if self.section else "", f"p. {self.page}" if self.page else ""]
        return ", ".join(part for part in parts if part) or "body"


@dataclass(frozen=True)
class Paper:
    """One paper: what is indexed, what the LLM reads, what a citation points at."""

    id: str
    title: str
    abstract: str
    authors: str = ""
    year: int = 0  # 0 = unknown; an int so Chroma can range-filter it
    url: str = ""
    categories: str = ""
    source: str = ""  # file the paper was ingested from
    doi: str = ""  # bare DOI ("10.1234/abc"), when the source gives or contains one
    body: str = field(default="", repr=False)  # full text beyond the abstract (PDFs)
    passages: tuple[Passage, ...] = field(default=(), repr=False)
    """Body passages located by page/section (PDFs); the abstract is not among them."""

    def metadata(self) -> dict[str, str | int]:
        """Flat, Chroma-safe metadata (no None, no lists)."""
        return {
            "paper_id": self.id,
            "title": self.title,
            "authors": self.authors,
            "year": self.year,
            "url": self.url,
            "categories": self.categories,
            "source": self.source,
            "doi": self.doi,
            "title_key": title_id(self.title),  # finds the same paper under another id
        }

    def record_metadata(self) -> dict[str, str | int]:
        """The papers collection's metadata: `metadata()` plus the abstract. The abstract
        is not the record's Chroma document, which local Chroma would index for
        full-text search (trigrams, inside the GIL): 5.1 vs 2.6 CPU s per 3,000
        papers, and nothing searches it (BM25 is rag/lexical.py)."""
        return {**self.metadata(), "abstract": self.abstract}

    @classmethod
    def from_metadata(cls, metadata: dict, document: str | None = None) -> "Paper":
        """The paper a papers-collection record holds; indexes written before
        `record_metadata` keep the abstract as the record's document."""
        abstract = metadata["abstract"] if "abstract" in metadata else document
        return cls(
            id=str(metadata["paper_id"]),
            title=str(metadata.get("title", "")),
            abstract=str(abstract or ""),
            authors=str(metadata.get("authors", "")),
            year=int(metadata.get("year") or 0),
            url=str(metadata.get("url", "")),
            categories=str(metadata.get("categories", "")),
            source=str(metadata.get("source", "")),
            doi=str(metadata.get("doi", "")),
        )
