"""The lexical (BM25) side of retrieval over passages: title + abstract, and body passages.

Each paper is one BM25 row for its title + abstract plus one row per body passage
(PDF pages, located by page and section), so a fact that only the body states is
found; a paper ranks by its best row, so a body-only match keeps its paper.

Chroma is the source of truth; this index is derived data kept in
`<settings.index>/lexical/<collection>/` and safe to throw away. Each write
makes a new generation directory holding:

- `FORMAT`: the layout version; a generation in another layout reads as empty,
  so `sync_with` rebuilds it from Chroma (old indexes upgrade themselves).
- `tokens.jsonl`: per paper, its stemmed tokens, its body passages (text,
  location, tokens) and the metadata filters need. A write tokenizes only the
  papers that changed; the BM25 matrix is then rebuilt from these stored tokens
  (no re-embedding, no re-tokenizing).
- `bm25/`: the bm25s matrix over rows, loaded memory-mapped for queries.
- `rows.npy`: where each paper's rows start (papers are contiguous, head row first).
- `papers.json`: paper ids in paper order plus filter metadata, so lexical
  filtering is a numpy mask and small filtered id sets can go to Chroma.
- `passages.json`: per paper, its body passages (page, section, text), read only
  when a query asks for matching passages.

`REVISION` records which write to Chroma (a token in the papers collection's
metadata, see PaperIndex.revision) this index matches. `sync_with` compares
count and revision before each query and repairs by id diff, so an
interrupted ingest, or another client writing to a shared `chroma run` server,
is caught up on the next query instead of silently serving stale results.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
FORMAT = "2"  # 1 (no FORMAT file): one row per paper; 2: rows per passage


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, Snowball-stemmed tokens: the same for papers and queries."""
    return bm25s.tokenize(
        list(texts), stopwords="en", stemmer=STEMMER, return_ids=False, show_progress=False
    )


def paper_text(paper: Paper) -> str:
    """A paper's head row: title and abstract (body passages are rows of their own)."""
    return f"{paper.title}\n{paper.abstract}"


@dataclass(frozen=True)
class LexicalDoc:
    """One paper as stored by the lexical index: head tokens, body passages, filter metadata."""

    id: str
    tokens: list[str]
    year: int
    authors: str
    categories: str
    source: str
    passages: tuple[Passage, ...] = ()
    passage_tokens: tuple[list[str], ...] = ()

    @classmethod
    def from_paper(
        cls, paper: Paper, tokens: list[str], passage_tokens: list[list[str]]
    ) -> "LexicalDoc":
        return cls(
            paper.id, tokens, paper.year, paper.authors, paper.categories, paper.source,
            tuple(paper.passages), tuple(passage_tokens),
        )  # fmt: skip

    def meta(self) -> dict:
        return {
            "id": self.id,
            "year": self.year,
            "authors": self.authors,
            "categories": self.categories,
            "source": self.source,
        }

    def row(self) -> dict:
        """The tokens.jsonl line."""
        passages = [
            {"page": p.page or 0, "section": p.section, "text": p.text, "tokens": " ".join(t)}
            for p, t in zip(self.passages, self.passage_tokens)
        ]
        return {**self.meta(), "tokens": " ".join(self.tokens), "passages": passages}

    @classmethod
    def from_row(cls, row: dict) -> "LexicalDoc":
        passages = row.pop("passages", [])
        tokens = row.pop("tokens")
        return cls(
            tokens=tokens.split(" ") if tokens else [],
            passages=tuple(
                Passage(p["text"], "body", p["page"] or None, p["section"]) for p in passages
            ),
            passage_tokens=tuple(p["tokens"].split(" ") if p["tokens"] else [] for p in passages),
            **row,
        )


@dataclass(frozen=True)
class LexicalHit:
    """A paper ranked by its best row, with its best-matching body passages (best first)."""

    paper_id: str
    score: float
    passages: list[tuple[Passage, float]]


def _docs_from_papers(papers: Sequence[Paper]) -> list[LexicalDoc]:
    """Tokenize head rows and body passages of all papers in one tokenizer call."""
    texts = [paper_text(paper) for paper in papers]
    for paper in papers:
        texts.extend(passage.text for passage in paper.passages)
    tokens = tokenize(texts)
    heads, rest = tokens[: len(papers)], tokens[len(papers) :]
    docs = []
    offset = 0
    for paper, head in zip(papers, heads):
        count = len(paper.passages)
        docs.append(LexicalDoc.from_paper(paper, head, rest[offset : offset + count]))
        offset += count
    return docs


class LexicalIndex:
    """BM25 over papers, persisted beside the Chroma index and kept in step with it.

    Each write produces a new generation directory and then atomically points
    `CURRENT` at it, so a reader (another process, the chat UI) sees either the
    old or the new index, never half of one, and notices a newer one by name.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._loaded: _Loaded | None = None
        self._allowed_cache: dict["RetrievalFilters", tuple[np.ndarray, frozenset[str]]] = {}
        self._allowed_generation = ""

    # --- reading -------------------------------------------------------------------------
    def _current(self) -> str:
        """The live generation, or "" when there is none in this layout (FORMAT)."""
        try:
            generation = (self.directory / "CURRENT").read_text(encoding="utf-8").strip()
            layout = (self.directory / generation / "FORMAT").read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return ""
        return generation if layout.strip() == FORMAT else ""

    def _state(self) -> "_Loaded":
        generation = self._current()
        if self._loaded is None or self._loaded.generation != generation:
            meta: list[dict] = []
            model = None
            starts = np.zeros(1, dtype=np.int64)
            if generation:
                folder = self.directory / generation
                meta = json.loads((folder / "papers.json").read_text(encoding="utf-8"))
                if meta:
                    model = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
                    starts = np.load(folder / "rows.npy")
            self._loaded = _Loaded(generation, meta, model, starts)
        return self._loaded

    @property
    def ids(self) -> list[str]:
        return [row["id"] for row in self._state().meta]

    def count(self) -> int:
        return len(self._state().meta)

    def metadata(self) -> list[dict]:
        """Per paper, in paper order: id, year, authors, categories, source."""
        return self._state().meta

    def allowed(self, filters: "RetrievalFilters") -> tuple[np.ndarray, frozenset[str]]:
        """(BM25 mask, allowed paper ids) for filters, cached per filters and generation.

        A scan of 50k metadata rows costs tens of milliseconds; a chat user keeps
        the same filters for many questions, so each combination is paid once.
        """
        meta = self.metadata()
        generation = self._loaded.generation if self._loaded else ""
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
        model = self._state().model
        return model is None or term in model.vocab_dict

    def _row_scores(self, query: str, mask: np.ndarray | None) -> np.ndarray | None:
        """BM25 score of every row (None: no query term is in the vocabulary)."""
        state = self._state()
        if state.model is None:
            return None
        tokens = [token for token in tokenize([query])[0] if token in state.model.vocab_dict]
        if not tokens:
            return None
        row_mask = None if mask is None else np.repeat(mask, np.diff(state.starts))
        return state.model.get_scores(tokens, weight_mask=row_mask)

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """Per paper, in paper order, the BM25 score of its best row (zeros where `mask` is 0)."""
        state = self._state()
        rows = self._row_scores(query, mask)
        if rows is None:
            return np.zeros(len(state.meta), dtype=np.float32)
        return np.maximum.reduceat(rows, state.starts[:-1])

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
        rows = self._row_scores(query, mask)
        if rows is None or k <= 0:
            return []
        scores = np.maximum.reduceat(rows, state.starts[:-1])
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        hits = []
        for i in top:
            if scores[i] <= 0:
                break
            passages: list[tuple[Passage, float]] = []
            start, end = int(state.starts[i]), int(state.starts[i + 1])
            if per_paper and end - start > 1:
                body = rows[start + 1 : end]
                best = np.argsort(-body, kind="stable")[:per_paper]
                stored = self._passages(int(i))
                passages = [(stored[j], float(body[j])) for j in best if body[j] > 0]
            hits.append(LexicalHit(state.meta[i]["id"], float(scores[i]), passages))
        return hits

    def _passages(self, paper: int) -> list[Passage]:
        """Body passages of the paper at this position (passages.json, loaded on first use)."""
        state = self._state()
        if state.passages is None:
            folder = self.directory / state.generation
            state.passages = json.loads((folder / "passages.json").read_text(encoding="utf-8"))
        return [
            Passage(text, "body", page or None, section)
            for page, section, text in state.passages[paper]
        ]

    # --- writing -------------------------------------------------------------------------
    def add(self, papers: Sequence[Paper]) -> None:
        """Add (or replace) papers: only they are tokenized; the matrix is rebuilt once."""
        if not papers:
            return
        fresh = _docs_from_papers(papers)
        with self._locked():
            docs = {doc.id: doc for doc in self._read_docs()}
            docs.update((doc.id, doc) for doc in fresh)
            self._write(list(docs.values()))

    def remove(self, paper_ids: Sequence[str]) -> None:
        """Drop papers by id (unknown ids are ignored)."""
        gone = set(paper_ids)
        with self._locked():
            docs = self._read_docs()
            kept = [doc for doc in docs if doc.id not in gone]
            if len(kept) != len(docs):
                self._write(kept)

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

    def sync_with(self, index: "PaperIndex") -> bool:
        """Make the paper set equal to Chroma's; True when anything had to change.

        Cheap when in step (a count and a revision token); otherwise diffs ids,
        removes extras and tokenizes only the missing papers, whose body passages are
        read back from their Chroma chunks. An index in an older layout reads as empty
        here, so it is rebuilt whole.
        """
        revision = index.revision()
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
        """Generation directories and staging files no write is using: what a killed
        rebuild leaves behind (call under the lock, or accept a racing writer's files)."""
        if not self.directory.is_dir():
            return []
        current = self._current()
        return sorted(
            path for path in self.directory.iterdir()
            if (path.name.startswith("gen-") and path.name != current)
            or path.name.startswith((".CURRENT-", ".REVISION-"))
        )  # fmt: skip

    def drop_leftovers(self) -> list[Path]:
        """Remove what leftovers() lists; returns what was removed."""
        with self._locked():
            stale = self.leftovers()
            for path in stale:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        return stale

    def _read_docs(self) -> list[LexicalDoc]:
        generation = self._current()
        if not generation:
            return []
        docs = []
        with open(self.directory / generation / "tokens.jsonl", encoding="utf-8") as handle:
            for line in handle:
                docs.append(LexicalDoc.from_row(json.loads(line)))
        return docs

    def _write(self, docs: list[LexicalDoc]) -> None:
        """Write a complete new generation, point CURRENT at it, drop the old one
        (and any generation a killed earlier write left behind; we hold the lock)."""
        for stale in self.leftovers():
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        try:
            old = (self.directory / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            old = ""
        generation = f"gen-{time.time_ns()}"
        folder = self.directory / generation
        folder.mkdir(parents=True)
        with open(folder / "tokens.jsonl", "w", encoding="utf-8") as handle:
            for doc in docs:
                handle.write(json.dumps(doc.row()) + "\n")
        if docs:
            rows = [tokens for doc in docs for tokens in (doc.tokens, *doc.passage_tokens)]
            model = bm25s.BM25()
            # An empty token list would break the matrix build; "" is bm25s's own empty token.
            model.index([tokens or [""] for tokens in rows], show_progress=False)
            model.save(str(folder / "bm25"), show_progress=False)
        sizes = [1 + len(doc.passages) for doc in docs]
        np.save(folder / "rows.npy", np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
        (folder / "papers.json").write_text(json.dumps([doc.meta() for doc in docs]))
        passages = [[[p.page or 0, p.section, p.text] for p in doc.passages] for doc in docs]
        (folder / "passages.json").write_text(json.dumps(passages))
        (folder / "FORMAT").write_text(FORMAT, encoding="utf-8")
        pointer = self.directory / f".CURRENT-{generation}"
        pointer.write_text(generation, encoding="utf-8")
        os.replace(pointer, self.directory / "CURRENT")
        if old:
            shutil.rmtree(self.directory / old, ignore_errors=True)


@dataclass
class _Loaded:
    """One generation as loaded for queries (passages read lazily)."""

    generation: str
    meta: list[dict]
    model: bm25s.BM25 | None
    starts: np.ndarray  # row where each paper starts, plus the total row count
    passages: list[list[list]] | None = None
