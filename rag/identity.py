"""Which id a paper gets, and when two records are the same paper.

Reference managers, arXiv dumps and scraped pages name the same paper
differently. A paper's id is its DOI when it has one, else its arXiv id, else
the title id (`rag.papers.title_id`). Because a page scrape has no DOI and a
`.bib` entry does, the same paper can still arrive under two ids; before
anything is written, `resolve_same_papers` maps every incoming paper onto the
id the index (or an earlier record of the same batch) already uses for it,
matching on id, DOI, arXiv id and normalised title. The index then stores it
once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.papers import Paper, title_id

if TYPE_CHECKING:  # the index imports chromadb and torch; parsing must not need them
    from rag.index import PaperIndex

GET_BATCH = 5000  # values per Chroma `$in` query, as in rag.index

title_key = lru_cache(maxsize=1 << 17)(title_id)
"""title_id, memoised: resolution needs each paper's title key several times (50k papers:
~10 s uncached, most of it in title normalisation)."""

DOI_PATTERN = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>{}]+)", re.I)
ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.I)
ARXIV_IN_TEXT = re.compile(
    r"(?:arxiv(?:\.org/(?:abs|pdf)/|[:\s]\s*)|^)"
    r"(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[a-z]{2})?/\d{7})(?:v\d+)?(?:\.pdf)?\b",
    re.I,
)
TRAILING_PUNCTUATION = ".,;:)]"


def bare_doi(text: str) -> str:
    """The DOI inside a field, URL or citation string ('' when there is none), lower-cased.

    DOIs are case-insensitive, so lower case makes the same DOI one id.
    """
    match = DOI_PATTERN.search(text or "")
    return match.group(1).rstrip(TRAILING_PUNCTUATION).lower() if match else ""


def arxiv_id(*texts: str) -> str:
    """The first arXiv id (without version) in any of the texts: 'arXiv:2401.01234v2',
    an arxiv.org URL, an arXiv DOI, or a bare id; '' when none holds one."""
    for text in texts:
        text = (text or "").strip()
        doi = ARXIV_DOI.match(bare_doi(text)) if "10.48550" in text else None
        match = ARXIV_IN_TEXT.search(doi.group(1) if doi else text)
        if match:
            return match.group(1)
    return ""


def paper_id(doi: str, arxiv: str, title: str) -> str:
    """DOI, then arXiv id, then the title id: the preference order of reference-manager ids.

    An arXiv DOI (10.48550/arXiv.X) becomes the arXiv id, which arXiv metadata already uses.
    """
    arxiv = arxiv or arxiv_id(doi)
    if doi and not ARXIV_DOI.match(doi):
        return doi
    return arxiv or title_key(title)


def has_own_id(paper: Paper) -> bool:
    """Whether the paper came with an identifier of its own (DOI, arXiv, dataset id)
    rather than the id made from its title."""
    return paper.id != title_key(paper.title)


def identity_keys(paper: Paper) -> tuple[set[str], set[str]]:
    """(keys this record is known by, keys it looks for).

    Ids, DOIs and arXiv ids identify a paper on their own. A title identifies it
    only against a record without an identifier of its own: two dataset records
    that share a title but carry different ids stay two papers.
    """
    key = title_key(paper.title)
    known = {f"id:{paper.id}"}
    if paper.doi:
        known.add(f"doi:{paper.doi.lower()}")
    arxiv = arxiv_id(paper.id, paper.doi, paper.url)
    if arxiv:
        known.add(f"id:{arxiv}")
    looks = set(known)
    if has_own_id(paper):
        known.add(f"titled:{key}")
        looks.add(f"untitled:{key}")
    else:
        known.add(f"untitled:{key}")
        looks |= {f"titled:{key}", f"untitled:{key}"}
    return known, looks


MERGED_FIELDS = ("authors", "year", "url", "categories", "doi", "body")
"""Blank fields the kept record of a paper takes from its other records in one batch."""

ENRICHED_FIELDS = ("authors", "year", "doi", "url", "categories", "abstract")
"""Blank fields a stored paper takes from a later record of it (PaperIndex.enrich_papers): a
PDF gives text but often no authors, year or DOI, a .bib entry exactly those. The body is
not among them: new text would need new chunks and vectors."""


def fill_blanks(kept: Paper, other: Paper, fields: Sequence[str] = MERGED_FIELDS) -> Paper:
    """`kept` with its blank `fields` taken from `other` (the same paper from another source)."""
    updates = {
        name: getattr(other, name)
        for name in fields
        if not getattr(kept, name) and getattr(other, name)
    }
    return dataclasses.replace(kept, **updates) if updates else kept


def merge_batch(papers: Sequence[Paper]) -> list[Paper]:
    """One paper per identity within a batch, the first record filled in from the later ones.

    Records that share an identity key (see identity_keys) are the same paper;
    the kept id is the best one among them (DOI, then arXiv, then title id).
    """
    parent = list(range(len(papers)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, paper in enumerate(papers):
        known, looks = identity_keys(paper)
        for key in looks:
            if key in owner:
                a, b = sorted((root(i), root(owner[key])))
                parent[b] = a
        for key in known:
            owner.setdefault(key, i)
    groups: dict[int, list[Paper]] = {}
    for i, paper in enumerate(papers):
        groups.setdefault(root(i), []).append(paper)
    merged = []
    for group in groups.values():
        best = min(group, key=_id_rank)
        paper = dataclasses.replace(group[0], id=best.id, doi=group[0].doi or best.doi)
        for other in group[1:]:
            paper = fill_blanks(paper, other)
        merged.append(paper)
    return merged


def _id_rank(paper: Paper) -> int:
    """0 for a DOI id, 1 for an arXiv id, 2 for anything else (title ids, dataset ids)."""
    if paper.doi and paper.id == paper.doi:
        return 0
    return 1 if arxiv_id(paper.id) == paper.id else 2


def _stored_by_metadata(index: PaperIndex, field: str, values: set[str]) -> dict[str, str]:
    """{metadata value: stored paper id} for stored papers whose `field` is one of `values`."""
    found: dict[str, str] = {}
    ordered = sorted(values)
    for start in range(0, len(ordered), GET_BATCH):
        batch = ordered[start : start + GET_BATCH]
        result = index.papers.get(where={field: {"$in": batch}}, include=["metadatas"])
        for stored_id, metadata in zip(result["ids"], result["metadatas"]):
            found.setdefault(str(metadata.get(field, "")).lower(), stored_id)
    return found


def resolve_same_papers(
    index: PaperIndex, papers: Sequence[Paper], earlier: dict[str, str] | None = None
) -> list[Paper]:
    """The batch merged (see merge_batch), each paper carrying the id the index already
    stores it under when it is stored; papers new to the index keep their own id.

    Stored papers are found by id (own, arXiv, title id: seed pages use title ids),
    by DOI, and, for an incoming paper without an identifier of its own, by the
    `title_key` metadata every paper is written with.

    `earlier` serves a run that arrives in batches (streaming ingest): it maps the
    identity keys of papers accepted in earlier batches of the run to their ids, so a
    record of the same paper in a later batch gets that id (and is skipped as a
    duplicate) even before the earlier batch is written; it is updated in place.
    Unlike records within one batch, such a later record does not fill in the
    earlier one's blank fields (it is already on its way to the index).
    """
    merged = merge_batch(papers)
    if not merged:
        return merged
    candidates: dict[str, list[str]] = {}
    for paper in merged:
        own = [paper.id, arxiv_id(paper.id, paper.doi, paper.url), title_key(paper.title)]
        candidates[paper.id] = [candidate for candidate in own if candidate]
    stored = index.existing_ids(sorted({c for ids in candidates.values() for c in ids}))
    dois = {variant for p in merged if p.doi for variant in (p.doi, p.doi.lower())}
    by_doi = _stored_by_metadata(index, "doi", dois) if dois else {}
    untitled = {title_key(p.title) for p in merged if not has_own_id(p)}
    by_title = _stored_by_metadata(index, "title_key", untitled) if untitled else {}
    resolved = []
    for paper in merged:
        known = next((c for c in candidates[paper.id] if c in stored), None)
        known = known or by_doi.get(paper.doi.lower()) or by_title.get(title_key(paper.title))
        if earlier is not None:
            keys, looks = identity_keys(paper)
            known = known or next((earlier[key] for key in sorted(looks) if key in earlier), None)
            for key in keys:
                earlier.setdefault(key, known or paper.id)
        resolved.append(dataclasses.replace(paper, id=known) if known else paper)
    return resolved
