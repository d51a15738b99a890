"""The lexical (BM25) side of retrieval over passages: title + abstract, and body passages.

Each paper is one BM25 row for its title + abstract plus one row per body passage
(PDF pages, located by page and section), so a fact that only the body states is
found; a paper ranks by its best row, so a body-only match keeps its paper.

Chroma is the source of truth; this index is derived data kept in
`<settings.index>/lexical/<collection>/` and safe to throw away.

Incremental, like a Lucene index: the index is a list of immutable *segments*
plus *tombstones*, named by a manifest. A write (an ingest batch, one uploaded
PDF, a delete) tokenizes only the papers that changed and writes them as a new
small segment, or only marks deleted papers in the manifest; its cost follows
the change, not the corpus (the previous design rebuilt the whole bm25s matrix
on every write: ~6 s at 50k papers). Segments store raw term frequencies and
row lengths, not precomputed BM25 weights, and a query computes BM25 with
corpus-wide statistics (live rows, document frequency of live rows, mean live
row length) over all segments, so scores equal a full rebuild's up to float
error (tests/test_lexical.py proves it, and that they equal bm25s's Lucene BM25).
Small segments are merged into larger ones by a size-tiered rule (`merge_start`),
which also drops tombstoned rows; each row is rewritten O(log n) times overall.

On disk:

- `CURRENT`: the name of the live manifest, swapped atomically, so a reader (another
  process, the chat UI) sees either the old or the new index, never half of one.
- `man-<ns>.json`: the layout `format` and the segments in order, each with the
  positions of its deleted papers. Another `format` (or an old `gen-*` generation
  named by CURRENT) reads as empty, so `sync_with` rebuilds it from Chroma: old
  indexes upgrade themselves.
- `seg-<ns>/`: one segment. `terms.json` (the terms of its columns), `indptr.npy`,
  `rows.npy`, `tfs.npy` (postings: per term, rows and term frequencies, memory-mapped),
  `lengths.npy` (tokens per row), `starts.npy` (where each paper's rows start: papers
  are contiguous, head row first), `papers.json` (ids plus filter metadata, so lexical
  filtering is a numpy mask and small filtered id sets can go to Chroma),
  `passages.json` (per paper, its body passages, read only when a query asks for them).

`REVISION` records which write to Chroma (a token in the papers collection's
metadata, see PaperIndex.revision) this index matches. `sync_with` compares
count and revision before each query and repairs by id diff, so an
interrupted ingest, or another client writing to a shared `chroma run` server,
is caught up on the next query instead of silently serving stale results.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import bm25s
import numpy as np
import Stemmer

from rag.papers import Paper, Passage

if TYPE_CHECKING:
    from rag.filters import RetrievalFilters
    from rag.index import PaperIndex

STEMMER = Stemmer.Stemmer("english")
FORMAT = "3"  # 1 (no FORMAT file): one row per paper; 2: one bm25s generation; 3: segments
K1, B = 1.5, 0.75
"""BM25 parameters: bm25s's defaults, which this index used before it became incremental."""
MERGE_FACTOR = 4
"""A segment is merged with the newer ones after it while it is at most this many times
their live size (size-tiered merging: the big base segment is rewritten only once the
newer segments together reach a quarter of it)."""


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, Snowball-stemmed tokens: the same for papers and queries."""
    return bm25s.tokenize(
        list(texts), stopwords="en", stemmer=STEMMER, return_ids=False, show_progress=False
    )


@lru_cache(maxsize=4096)
def stems(text: str) -> tuple[str, ...]:
    """tokenize() of one text (a query, a word, a sentence), cached: the same ones recur
    in scoring, query analysis and the evidence gates, and bm25s builds (hidden)
    progress bars under a global lock on every call: ~5 % of the chat server's GIL
    time under 20 users before this cache."""
    return tuple(tokenize([text])[0])


def paper_text(paper: Paper) -> str:
    """A paper's head row: title and abstract (body passages are rows of their own)."""
    return f"{paper.title}\n{paper.abstract}"


def paper_meta(paper: Paper) -> dict:
    """What filters need of a paper (rag/filters.py), kept per paper in papers.json."""
    return {
        "id": paper.id,
        "year": paper.year,
        "authors": paper.authors,
        "categories": paper.categories,
        "source": paper.source,
    }


def bm25_idf(rows: int, df: int) -> float:
    """Lucene's BM25 idf (never negative), as bm25s computes it."""
    return math.log(1.0 + (rows - df + 0.5) / (df + 0.5))


def merge_start(live_rows: Sequence[int], dead_rows: Sequence[int]) -> int:
    """Where the tail of segments to merge into one starts (len(...) : merge nothing).

    Size-tiered: walking back from the newest segment, an older one joins the tail
    while it is at most MERGE_FACTOR times the tail's live rows. A segment whose
    tombstoned rows outnumber its live ones joins too, so deletes are reclaimed.
    A tail of one segment is rewritten only when it carries such tombstones.
    """
    count = len(live_rows)
    if count == 0:
        return 0
    start, tail = count - 1, live_rows[-1]
    while start > 0 and live_rows[start - 1] <= MERGE_FACTOR * tail:
        start -= 1
        tail += live_rows[start]
    wasteful = [i for i in range(count) if dead_rows[i] > live_rows[i]]
    if wasteful:
        start = min(start, wasteful[0])
    if start == count - 1 and dead_rows[start] <= live_rows[start]:
        return count
    return start


@dataclass(frozen=True)
class LexicalHit:
    """A paper ranked by its best row, with its best-matching body passages (best first)."""

    paper_id: str
    score: float
    passages: list[tuple[Passage, float]]


@dataclass
class _Postings:
    """A term-major sparse matrix of term frequencies (CSC: one column per term)."""

    terms: list[str]
    indptr: np.ndarray  # int64, len(terms) + 1
    rows: np.ndarray  # int32, row of each posting (ascending within a term)
    tfs: np.ndarray  # float32, term frequency of each posting


def _postings(tokens: Sequence[Sequence[str]]) -> _Postings:
    """Term frequencies of tokenized rows, built with one sort instead of per-row counting."""
    ids: dict[str, int] = {}
    flat = np.fromiter(
        (ids.setdefault(token, len(ids)) for row in tokens for token in row), dtype=np.int64
    )
    lengths = np.fromiter((len(row) for row in tokens), dtype=np.int64, count=len(tokens))
    rows = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
    keys, tfs = np.unique(flat * max(len(tokens), 1) + rows, return_counts=True)
    return _csc(list(ids), keys // max(len(tokens), 1), keys % max(len(tokens), 1), tfs)


def _csc(terms: list[str], term_ids: np.ndarray, rows: np.ndarray, tfs: np.ndarray) -> _Postings:
    """Postings sorted by (term, row) into the CSC layout."""
    indptr = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(np.bincount(term_ids, minlength=len(terms)), out=indptr[1:])
    return _Postings(terms, indptr, rows.astype(np.int32, copy=False), tfs.astype(np.float32, copy=False))


@dataclass
class _SegmentData:
    """A segment before it is written: postings, row lengths, papers."""

    postings: _Postings
    lengths: np.ndarray  # float32 tokens per row
    sizes: np.ndarray  # rows per paper
    meta: list[dict]
    passages: list[list[list]]  # per paper: [page, section, text] per body passage


def _segment_from_papers(papers: Sequence[Paper]) -> _SegmentData:
    """Tokenize each paper's head row and body passages (one tokenizer call) into a segment."""
    texts: list[str] = []
    for paper in papers:
        texts.append(paper_text(paper))
        texts.extend(passage.text for passage in paper.passages)
    tokens = tokenize(texts)
    return _SegmentData(
        postings=_postings(tokens),
        lengths=np.fromiter((len(row) for row in tokens), np.float32, len(tokens)),
        sizes=np.array([1 + len(paper.passages) for paper in papers], dtype=np.int64),
        meta=[paper_meta(paper) for paper in papers],
        passages=[[[p.page or 0, p.section, p.text] for p in paper.passages] for paper in papers],
    )


class _Segment:
    """One immutable segment directory, loaded for queries (postings memory-mapped)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.name = folder.name
        self.terms: list[str] = json.loads((folder / "terms.json").read_text(encoding="utf-8"))
        self.vocab = {term: column for column, term in enumerate(self.terms)}
        self.indptr = np.load(folder / "indptr.npy")
        self.rows = np.load(folder / "rows.npy", mmap_mode="r")
        self.tfs = np.load(folder / "tfs.npy", mmap_mode="r")
        self.lengths = np.load(folder / "lengths.npy")
        self.starts = np.load(folder / "starts.npy")
        self.meta: list[dict] = json.loads((folder / "papers.json").read_text(encoding="utf-8"))
        self._passages: list[list[list]] | None = None

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.starts)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, term frequencies) of one term, or None when no row has it."""
        column = self.vocab.get(term)
        if column is None:
            return None
        low, high = self.indptr[column], self.indptr[column + 1]
        return np.asarray(self.rows[low:high]), np.asarray(self.tfs[low:high])

    def all_passages(self) -> list[list[list]]:
        """Per paper, [page, section, text] per body passage (passages.json, read on first use)."""
        if self._passages is None:
            self._passages = json.loads((self.folder / "passages.json").read_text("utf-8"))
        return self._passages

    def passages(self, paper: int) -> list[Passage]:
        """Body passages of the paper at this position."""
        return [
            Passage(text, "body", page or None, section)
            for page, section, text in self.all_passages()[paper]
        ]

    @staticmethod
    def write(folder: Path, data: _SegmentData) -> None:
        folder.mkdir(parents=True)
        (folder / "terms.json").write_text(json.dumps(data.postings.terms), encoding="utf-8")
        np.save(folder / "indptr.npy", data.postings.indptr)
        np.save(folder / "rows.npy", data.postings.rows)
        np.save(folder / "tfs.npy", data.postings.tfs)
        np.save(folder / "lengths.npy", data.lengths.astype(np.float32))
        starts = np.concatenate([[0], np.cumsum(data.sizes)]).astype(np.int64)
        np.save(folder / "starts.npy", starts)
        (folder / "papers.json").write_text(json.dumps(data.meta), encoding="utf-8")
        (folder / "passages.json").write_text(json.dumps(data.passages), encoding="utf-8")


def _merged(segments: Sequence[_Segment], deleted: Sequence[np.ndarray]) -> _SegmentData:
    """The live papers of several segments as one segment (no re-tokenizing: postings
    are re-numbered and re-sorted with numpy).

    Postings stay int32 and are ordered by one stable sort on the term: each segment's
    rows of a term are ascending and the segments are laid out in row order, so rows
    come out ascending without a combined (term, row) key. The whole corpus passes
    through here at the ingest's largest merge, so its arrays set the ingest's peak memory.
    """
    ids: dict[str, int] = {}
    term_ids, rows, tfs, lengths, sizes = [], [], [], [], []
    meta: list[dict] = []
    passages: list[list[list]] = []
    offset = 0
    for segment, dead in zip(segments, deleted):
        keep_papers = ~dead
        keep_rows = np.repeat(keep_papers, segment.sizes)
        renumber = (np.cumsum(keep_rows) - 1 + offset).astype(np.int32)
        mapping = np.fromiter((ids.setdefault(t, len(ids)) for t in segment.terms), np.int32,
                              len(segment.terms))  # fmt: skip
        local_terms = np.repeat(mapping, np.diff(segment.indptr))
        local_rows = np.asarray(segment.rows)
        live = keep_rows[local_rows]
        term_ids.append(local_terms[live])
        rows.append(renumber[local_rows[live]])
        tfs.append(np.asarray(segment.tfs)[live])
        del local_terms, local_rows, live
        lengths.append(segment.lengths[keep_rows])
        sizes.append(segment.sizes[keep_papers])
        stored = segment.all_passages()
        for position in np.flatnonzero(keep_papers):
            meta.append(segment.meta[position])
            passages.append(stored[position])
        offset += int(keep_rows.sum())
    all_terms = np.concatenate(term_ids) if term_ids else np.zeros(0, np.int32)
    del term_ids
    # Terms that only tombstoned rows had are dropped (knows() must forget them).
    used = np.bincount(all_terms, minlength=len(ids)) > 0
    if not used.all():
        all_terms = (np.cumsum(used, dtype=np.int32) - 1)[all_terms]
    terms = [term for term, kept in zip(ids, used) if kept]
    order = np.argsort(all_terms, kind="stable")
    all_terms = all_terms[order]
    all_rows = (np.concatenate(rows) if rows else np.zeros(0, np.int32))[order]
    del rows
    all_tfs = (np.concatenate(tfs) if tfs else np.zeros(0, np.float32))[order]
    del tfs, order
    return _SegmentData(
        postings=_csc(terms, all_terms, all_rows, all_tfs),
        lengths=np.concatenate(lengths).astype(np.float32),
        sizes=np.concatenate(sizes).astype(np.int64),
        meta=meta,
        passages=passages,
    )


@dataclass
class _Loaded:
    """The live manifest as loaded for queries: its segments laid end to end.

    Global paper positions count every paper of every segment, deleted ones too;
    `live` lists the positions of papers that are not deleted, and "paper order"
    (ids, metadata, masks, scores) is the order of `live`.
    """

    manifest: str
    segments: list[_Segment]
    deleted: list[np.ndarray]  # per segment: bool per paper
    dead_rows: list[np.ndarray | None]  # per segment: bool per row (None: nothing deleted)
    row_offsets: np.ndarray  # first global row of each segment, plus the total
    paper_offsets: np.ndarray  # first global paper of each segment, plus the total
    starts: np.ndarray  # first global row of each global paper, plus the total
    live: np.ndarray  # global positions of live papers, in paper order
    meta: list[dict]
    live_rows: int
    live_length: float  # tokens in live rows
    _positions: dict[str, tuple[int, int]] | None = None

    @classmethod
    def build(cls, manifest: str, segments: list[_Segment], deleted: list[np.ndarray]):
        dead_rows = [
            np.repeat(dead, segment.sizes) if dead.any() else None
            for segment, dead in zip(segments, deleted)
        ]
        rows = [len(segment.lengths) for segment in segments]
        papers = [len(segment.meta) for segment in segments]
        row_offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        paper_offsets = np.concatenate([[0], np.cumsum(papers)]).astype(np.int64)
        starts = np.concatenate(
            [segment.starts[:-1] + offset for segment, offset in zip(segments, row_offsets)]
            + [row_offsets[-1:]]
        ).astype(np.int64)
        alive = np.concatenate([~dead for dead in deleted]) if deleted else np.zeros(0, bool)
        live = np.flatnonzero(alive)
        meta = [row for segment, dead in zip(segments, deleted)
                for row, gone in zip(segment.meta, dead) if not gone]  # fmt: skip
        live_rows, live_length = 0, 0.0
        for segment, dead in zip(segments, dead_rows):
            lengths = segment.lengths if dead is None else segment.lengths[~dead]
            live_rows += len(lengths)
            live_length += float(lengths.sum(dtype=np.float64))
        return cls(manifest, segments, deleted, dead_rows, row_offsets, paper_offsets, starts,
                   live, meta, live_rows, live_length)  # fmt: skip

    def positions(self) -> dict[str, tuple[int, int]]:
        """Live paper id -> (segment, position in it): what a write tombstones."""
        if self._positions is None:
            self._positions = {
                row["id"]: (s, p)
                for s, (segment, dead) in enumerate(zip(self.segments, self.deleted))
                for p, row in enumerate(segment.meta) if not dead[p]
            }  # fmt: skip
        return self._positions

    def per_paper(self, rows: np.ndarray) -> np.ndarray:
        """Each live paper's best row score, in paper order."""
        best = np.maximum.reduceat(rows, self.starts[:-1])
        return best if len(self.live) == len(best) else best[self.live]

    def segment_of(self, paper: int) -> tuple[_Segment, int]:
        """(segment, position in it) of a global paper position."""
        s = int(np.searchsorted(self.paper_offsets, paper, side="right")) - 1
        return self.segments[s], paper - int(self.paper_offsets[s])

    def live_postings(self, term: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Per segment with live rows holding `term`: (segment, rows, term frequencies)."""
        found = []
        for s, (segment, dead) in enumerate(zip(self.segments, self.dead_rows)):
            postings = segment.postings(term)
            if postings is None:
                continue
            rows, tfs = postings
            if dead is not None:
                keep = ~dead[rows]
                rows, tfs = rows[keep], tfs[keep]
            if rows.size:
                found.append((s, rows, tfs))
        return found


EMPTY = _Loaded.build("", [], [])


class LexicalIndex:
    """BM25 over papers, persisted beside the Chroma index and kept in step with it.

    Each write adds a segment and/or tombstones and then atomically points `CURRENT`
    at a new manifest, so a reader (another process, the chat UI) sees either the
    old or the new index, never half of one, and notices a newer one by name.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._loaded: _Loaded = EMPTY
        self._segments: dict[str, _Segment] = {}  # loaded segments, reused across manifests
        self._allowed_cache: dict["RetrievalFilters", tuple[np.ndarray, frozenset[str]]] = {}
        self._allowed_generation = ""

    # --- reading -------------------------------------------------------------------------
    def _manifest(self) -> tuple[str, dict | None]:
        """(name, content) of the live manifest; content None when there is none in this
        layout (FORMAT), e.g. an old `gen-*` generation. A writer deletes the previous
        manifest right after its swap, so a reader that lost that race reads CURRENT again."""
        for _ in range(3):
            try:
                name = (self.directory / "CURRENT").read_text(encoding="utf-8").strip()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return "", None
            if not name.startswith("man-"):
                return name, None
            try:
                content = json.loads((self.directory / name).read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue
            except ValueError:
                return name, None
            return (name, content) if content.get("format") == FORMAT else (name, None)
        return "", None

    def _current(self) -> str:
        """The live manifest's name, or "" when there is none in this layout."""
        name, content = self._manifest()
        return name if content is not None else ""

    def _state(self) -> _Loaded:
        """The live manifest, loaded. Cheap when nothing changed (one small file read per
        query); a writer may delete an old manifest's segments right after its swap, so
        a reader that lost that race reads CURRENT again (bounded)."""
        try:
            current = (self.directory / "CURRENT").read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            current = ""
        if current == self._loaded.manifest:
            return self._loaded
        for attempt in range(3):
            name, content = self._manifest()
            if content is None:
                name = ""
            if name == self._loaded.manifest:
                return self._loaded
            try:
                segments = [self._segment(entry["name"]) for entry in content["segments"]] if (
                    content) else []  # fmt: skip
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            deleted = []
            for segment, entry in zip(segments, content["segments"] if content else []):
                dead = np.zeros(len(segment.meta), dtype=bool)
                dead[entry["deleted"]] = True
                deleted.append(dead)
            self._segments = {segment.name: segment for segment in segments}  # drop old ones
            self._loaded = _Loaded.build(name, segments, deleted)
            break
        return self._loaded

    def _segment(self, name: str) -> _Segment:
        """A segment by name, loaded once per process (segments never change)."""
        if name not in self._segments:
            self._segments[name] = _Segment(self.directory / name)
        return self._segments[name]

    @property
    def ids(self) -> list[str]:
        return [row["id"] for row in self._state().meta]

    def count(self) -> int:
        return len(self._state().meta)

    def metadata(self) -> list[dict]:
        """Per paper, in paper order: id, year, authors, categories, source."""
        return self._state().meta

    def allowed(self, filters: "RetrievalFilters") -> tuple[np.ndarray, frozenset[str]]:
        """(BM25 mask, allowed paper ids) for filters, cached per filters and manifest.

        A scan of 50k metadata rows costs tens of milliseconds; a chat user keeps
        the same filters for many questions, so each combination is paid once.
        """
        meta = self.metadata()
        generation = self._loaded.manifest
        if self._allowed_generation != generation:
            self._allowed_cache.clear()
            self._allowed_generation = generation
        if filters not in self._allowed_cache:
            if len(self._allowed_cache) >= 32:
                self._allowed_cache.clear()
            mask = filters.mask(meta)
            ids = frozenset(meta[i]["id"] for i in np.flatnonzero(mask))
            self._allowed_cache[filters] = (mask, ids)
        return self._allowed_cache[filters]

    def knows(self, term: str) -> bool:
        """Does any paper (title, abstract or body) contain this (tokenized, stemmed) term?
        True when the index is empty: absence from nothing says nothing (rag/abstain.py)."""
        state = self._state()
        return not state.meta or bool(state.live_postings(term))

    @staticmethod
    def _row_scores(state: _Loaded, query: str, mask: np.ndarray | None) -> np.ndarray | None:
        """BM25 score of every global row (None: no query term is in a live row).

        Statistics are corpus-wide over live rows of all segments, so a row scores
        exactly as it would after a full rebuild. A term repeated in the query counts
        once per occurrence, as in bm25s.
        """
        if not state.meta:
            return None
        terms = [(times, state.live_postings(term))
                 for term, times in Counter(stems(query)).items()]  # fmt: skip
        terms = [(times, found) for times, found in terms if found]
        if not terms:
            return None
        average = state.live_length / state.live_rows
        scores = np.zeros(int(state.row_offsets[-1]), dtype=np.float32)
        for times, found in terms:
            idf = bm25_idf(state.live_rows, sum(rows.size for _, rows, _ in found))
            for s, rows, tfs in found:
                lengths = state.segments[s].lengths[rows]
                weight = tfs / (tfs + K1 * (1 - B + B * lengths / average))
                scores[state.row_offsets[s] + rows] += (times * idf) * weight
        if mask is not None:
            papers = np.zeros(len(state.starts) - 1, dtype=np.float32)
            papers[state.live] = mask
            scores *= np.repeat(papers, np.diff(state.starts))
        return scores

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """Per paper, in paper order, the BM25 score of its best row (zeros where `mask` is 0)."""
        state = self._state()
        rows = self._row_scores(state, query, mask)
        if rows is None:
            return np.zeros(len(state.meta), dtype=np.float32)
        return state.per_paper(rows)

    def search(
        self, query: str, k: int, mask: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (paper id, BM25 score of its best row) pairs with a positive score."""
        return [(hit.paper_id, hit.score) for hit in self.search_passages(query, k, mask, 0)]

    def search_passages(
        self, query: str, k: int, mask: np.ndarray | None = None, per_paper: int = 3
    ) -> list[LexicalHit]:
        """Top-k papers by their best row, each with up to `per_paper` matching body passages."""
        state = self._state()
        rows = self._row_scores(state, query, mask)
        if rows is None or k <= 0:
            return []
        scores = state.per_paper(rows)
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        hits = []
        for i in top:
            if scores[i] <= 0:
                break
            paper = int(state.live[i])
            passages: list[tuple[Passage, float]] = []
            start, end = int(state.starts[paper]), int(state.starts[paper + 1])
            if per_paper and end - start > 1:
                body = rows[start + 1 : end]
                best = np.argsort(-body, kind="stable")[:per_paper]
                segment, position = state.segment_of(paper)
                stored = segment.passages(position)
                passages = [(stored[j], float(body[j])) for j in best if body[j] > 0]
            hits.append(LexicalHit(state.meta[i]["id"], float(scores[i]), passages))
        return hits

    # --- writing -------------------------------------------------------------------------
    def add(self, papers: Sequence[Paper]) -> None:
        """Add (or replace) papers: they become one new segment; a paper already indexed
        under the same id is tombstoned. Cost follows len(papers), plus merges."""
        if not papers:
            return
        fresh = list({paper.id: paper for paper in papers}.values())
        data = _segment_from_papers(fresh)  # tokenizing needs no lock
        with self._locked():
            state = self._state()
            deleted = self._tombstoned(state, [paper.id for paper in fresh])
            folder = self.directory / f"seg-{time.time_ns()}"
            _Segment.write(folder, data)
            segments = [*state.segments, self._segment(folder.name)]
            self._commit(segments, [*deleted, np.zeros(len(fresh), dtype=bool)])

    def remove(self, paper_ids: Sequence[str]) -> None:
        """Drop papers by id (unknown ids are ignored): tombstones, no rewrite."""
        with self._locked():
            state = self._state()
            known = [paper_id for paper_id in paper_ids if paper_id in state.positions()]
            if known:
                self._commit(state.segments, self._tombstoned(state, known))

    @staticmethod
    def _tombstoned(state: _Loaded, paper_ids: Sequence[str]) -> list[np.ndarray]:
        """The state's deleted masks with these papers (where indexed) marked deleted."""
        deleted = [dead.copy() for dead in state.deleted]
        positions = state.positions()
        for paper_id in paper_ids:
            if paper_id in positions:
                s, p = positions[paper_id]
                deleted[s][p] = True
        return deleted

    def _commit(self, segments: list[_Segment], deleted: list[np.ndarray]) -> None:
        """Merge per `merge_start`, write a manifest, point CURRENT at it, then delete what
        no manifest names any more (and what a killed earlier write left; we hold the lock)."""
        kept = [(s, d) for s, d in zip(segments, deleted) if not d.all()]
        segments, deleted = [s for s, _ in kept], [d for _, d in kept]
        live = [int(np.repeat(~d, s.sizes).sum()) for s, d in zip(segments, deleted)]
        dead = [len(s.lengths) - n for s, n in zip(segments, live)]
        start = merge_start(live, dead)
        if start < len(segments):
            folder = self.directory / f"seg-{time.time_ns()}"
            _Segment.write(folder, _merged(segments[start:], deleted[start:]))
            merged = self._segment(folder.name)
            segments = [*segments[:start], merged]
            deleted = [*deleted[:start], np.zeros(len(merged.meta), dtype=bool)]
        name = f"man-{time.time_ns()}.json"
        manifest = {
            "format": FORMAT,
            "segments": [
                {"name": s.name, "deleted": np.flatnonzero(d).tolist()}
                for s, d in zip(segments, deleted)
            ],
        }
        (self.directory / name).write_text(json.dumps(manifest), encoding="utf-8")
        pointer = self.directory / f".CURRENT-{name}"
        pointer.write_text(name, encoding="utf-8")
        os.replace(pointer, self.directory / "CURRENT")
        self._drop(self.leftovers())

    def synced_revision(self) -> str:
        try:
            return (self.directory / "REVISION").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    def mark_synced(self, revision: str) -> None:
        """Remember which Chroma revision (see PaperIndex.revision) this index matches."""
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = self.directory / f".REVISION-{os.getpid()}"
        staging.write_text(revision, encoding="utf-8")
        os.replace(staging, self.directory / "REVISION")

    def sync_with(self, index: "PaperIndex", revision: str | None = None) -> bool:
        """Make the paper set equal to Chroma's; True when anything had to change.

        Cheap when in step (a count and a revision token, which the caller may pass when
        it has just read it); otherwise diffs ids,
        removes extras and tokenizes only the missing papers, whose body passages are
        read back from their Chroma chunks. An index in an older layout reads as empty
        here, so it is rebuilt whole.
        """
        revision = index.revision() if revision is None else revision
        if index.paper_count() == self.count() and revision == self.synced_revision():
            return False
        chroma_ids = set(index.all_ids())
        mine = set(self.ids)
        extra = mine - chroma_ids
        missing = sorted(chroma_ids - mine)
        if extra:
            self.remove(sorted(extra))
        papers: list[Paper] = []
        for start in range(0, len(missing), 1000):
            batch = missing[start : start + 1000]
            bodies = index.body_passages(batch)
            papers.extend(
                replace(paper, passages=bodies.get(paper.id, ()))
                for paper in index.get_papers(batch).values()
            )
        self.add(papers)
        self.mark_synced(revision)
        return bool(extra or missing)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two CLI ingests, or the UI and a CLI, on one index)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def leftovers(self) -> list[Path]:
        """Files no write is using: manifests and segments the live manifest does not
        name, generations of the previous layout, staging files; what a killed write
        leaves behind (call under the lock, or accept a racing writer's files)."""
        if not self.directory.is_dir():
            return []
        name, content = self._manifest()
        used = {name} | {entry["name"] for entry in (content or {}).get("segments", [])}
        return sorted(
            path for path in self.directory.iterdir()
            if (path.name.startswith(("gen-", "seg-", "man-")) and path.name not in used)
            or path.name.startswith((".CURRENT-", ".REVISION-"))
        )  # fmt: skip

    def drop_leftovers(self) -> list[Path]:
        """Remove what leftovers() lists; returns what was removed."""
        with self._locked():
            stale = self.leftovers()
            self._drop(stale)
        return stale

    @staticmethod
    def _drop(paths: Sequence[Path]) -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
