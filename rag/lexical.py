"""The lexical (BM25) side of retrieval: one document per paper, title + abstract.

Chroma is the source of truth; this index is derived data kept in
`<settings.index>/lexical/<collection>/` and safe to throw away. Each write
makes a new generation directory holding:

- `tokens.jsonl`: per paper, its stemmed tokens and the metadata filters need.
  A write tokenizes only the papers that changed; the BM25 matrix is then
  rebuilt from these stored tokens (no re-embedding, no re-tokenizing).
- `bm25/`: the bm25s matrix, loaded memory-mapped for queries.
- `papers.json`: paper ids in matrix order plus filter metadata, so lexical
  filtering is a numpy mask and small filtered id sets can go to Chroma.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import bm25s
import numpy as np
import Stemmer

from rag.papers import Paper

if TYPE_CHECKING:
    from rag.filters import RetrievalFilters
    from rag.index import PaperIndex

STEMMER = Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, Snowball-stemmed tokens: the same for papers and queries."""
    return bm25s.tokenize(
        list(texts), stopwords="en", stemmer=STEMMER, return_ids=False, show_progress=False
    )


def paper_text(paper: Paper) -> str:
    """What BM25 sees: title and abstract both count (the body of long PDFs does not)."""
    return f"{paper.title}\n{paper.abstract}"


@dataclass(frozen=True)
class LexicalDoc:
    """One paper as stored by the lexical index: tokens plus filterable metadata."""

    id: str
    tokens: list[str]
    year: int
    authors: str
    categories: str
    source: str

    @classmethod
    def from_paper(cls, paper: Paper, tokens: list[str]) -> "LexicalDoc":
        return cls(paper.id, tokens, paper.year, paper.authors, paper.categories, paper.source)

    def meta(self) -> dict:
        return {
            "id": self.id,
            "year": self.year,
            "authors": self.authors,
            "categories": self.categories,
            "source": self.source,
        }


class LexicalIndex:
    """BM25 over papers, persisted beside the Chroma index and kept in step with it.

    Each write produces a new generation directory and then atomically points
    `CURRENT` at it, so a reader (another process, the chat UI) sees either the
    old or the new index, never half of one, and notices a newer one by name.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._loaded: tuple[str, list[dict], bm25s.BM25 | None] | None = None
        self._allowed_cache: dict["RetrievalFilters", tuple[np.ndarray, frozenset[str]]] = {}
        self._allowed_generation = ""

    # --- reading -------------------------------------------------------------------------
    def _current(self) -> str:
        try:
            return (self.directory / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    def _state(self) -> tuple[list[dict], bm25s.BM25 | None]:
        generation = self._current()
        if self._loaded is None or self._loaded[0] != generation:
            meta: list[dict] = []
            model = None
            if generation:
                folder = self.directory / generation
                meta = json.loads((folder / "papers.json").read_text(encoding="utf-8"))
                if meta:
                    model = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
            self._loaded = (generation, meta, model)
        return self._loaded[1], self._loaded[2]

    @property
    def ids(self) -> list[str]:
        return [row["id"] for row in self._state()[0]]

    def count(self) -> int:
        return len(self._state()[0])

    def metadata(self) -> list[dict]:
        """Per paper, in matrix order: id, year, authors, categories, source."""
        return self._state()[0]

    def allowed(self, filters: "RetrievalFilters") -> tuple[np.ndarray, frozenset[str]]:
        """(BM25 mask, allowed paper ids) for filters, cached per filters and generation.

        A scan of 50k metadata rows costs tens of milliseconds; a chat user keeps
        the same filters for many questions, so each combination is paid once.
        """
        meta = self.metadata()
        generation = self._loaded[0] if self._loaded else ""
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
        """Does any paper contain this (tokenized, stemmed) term? True when the index is
        empty: absence from nothing says nothing (rag/abstain.py)."""
        model = self._state()[1]
        return model is None or term in model.vocab_dict

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every paper for `query`, in matrix order (zeros where `mask` is 0)."""
        meta, model = self._state()
        if model is None:
            return np.zeros(0, dtype=np.float32)
        tokens = [token for token in tokenize([query])[0] if token in model.vocab_dict]
        if not tokens:
            return np.zeros(len(meta), dtype=np.float32)
        return model.get_scores(tokens, weight_mask=mask)

    def search(
        self, query: str, k: int, mask: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (paper id, BM25 score) pairs with a positive score."""
        scores = self.scores(query, mask)
        if scores.size == 0 or k <= 0:
            return []
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        meta = self.metadata()
        return [(meta[i]["id"], float(scores[i])) for i in top if scores[i] > 0]

    # --- writing -------------------------------------------------------------------------
    def add(self, papers: Sequence[Paper]) -> None:
        """Add (or replace) papers: only they are tokenized; the matrix is rebuilt once."""
        if not papers:
            return
        fresh = [
            LexicalDoc.from_paper(paper, tokens)
            for paper, tokens in zip(papers, tokenize([paper_text(p) for p in papers]))
        ]
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
        removes extras and tokenizes only the missing papers.
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
            papers.extend(index.get_papers(missing[start : start + 1000]).values())
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
                row = json.loads(line)
                tokens = row.pop("tokens")
                docs.append(LexicalDoc(tokens=tokens.split(" ") if tokens else [], **row))
        return docs

    def _write(self, docs: list[LexicalDoc]) -> None:
        """Write a complete new generation, point CURRENT at it, drop the old one
        (and any generation a killed earlier write left behind; we hold the lock)."""
        for stale in self.leftovers():
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        old = self._current()
        generation = f"gen-{time.time_ns()}"
        folder = self.directory / generation
        folder.mkdir(parents=True)
        with open(folder / "tokens.jsonl", "w", encoding="utf-8") as handle:
            for doc in docs:
                handle.write(json.dumps({**doc.meta(), "tokens": " ".join(doc.tokens)}) + "\n")
        if docs:
            model = bm25s.BM25()
            # An empty token list would break the matrix build; "" is bm25s's own empty token.
            model.index([doc.tokens or [""] for doc in docs], show_progress=False)
            model.save(str(folder / "bm25"), show_progress=False)
        (folder / "papers.json").write_text(json.dumps([doc.meta() for doc in docs]))
        pointer = self.directory / f".CURRENT-{generation}"
        pointer.write_text(generation, encoding="utf-8")
        os.replace(pointer, self.directory / "CURRENT")
        if old:
            shutil.rmtree(self.directory / old, ignore_errors=True)
