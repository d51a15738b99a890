"""Question → ranked papers: dense (Chroma) and BM25 rankings, fused, at paper level.

Why both: MiniLM finds paraphrases but blurs rare exact terms (model names,
acronyms, chemical names); BM25 is the reverse. Each side ranks *papers*:
dense searches per-paper vectors for abstract corpora and otherwise collapses
chunks to their paper by the best chunk's cosine; in an abstract corpus holding
some long documents it also searches the body chunks alone, so a PDF's body is
never out of reach. BM25 ranks a paper by its best row (title + abstract, or one
body passage). Both sides report the body passages that matched, which become
`Source.passages`. The two paper rankings are fused
(by default a sum of min-max normalised scores, which kept a paper found
strongly by one side only near the top more often than reciprocal-rank fusion
did; the measurements are in docs/retrieval.md), optionally reranked, and
filtered by metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.filters import RetrievalFilters
from rag.index import PaperIndex, chunk_paper_id, chunk_passage, chunk_text
from rag.papers import Paper, Passage
from rag.rerank import rerank
from rag.settings import Settings

SNIPPET_CHARS = 240
PUSHDOWN_MAX_IDS = 2000
"""Filtered id sets up to this size restrict the Chroma search itself; larger ones are
applied to an over-fetched candidate list (they rarely starve it)."""
PAPER_VECTOR_MAX_CHUNK_RATIO = 1.1


@dataclass
class Source:
    """A retrieved paper, as shown to the LLM and to the reader."""

    paper: Paper
    score: float  # ranking score: fused scores are only comparable within one query
    best_chunk: str
    similarity: float | None = None
    """Cosine between question and paper (dense side): comparable across questions, so
    abstention thresholds use it; None when only BM25 found the paper."""
    passages: list[Passage] = field(default_factory=list)
    """Body passages of a long document that matched the question, best first (empty for
    abstract-only papers). The abstract itself is always `paper.abstract`."""

    @property
    def snippet(self) -> str:
        text = " ".join(self.best_chunk.split())
        return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"

    def as_json(self, rank: int | None = None) -> dict:
        row = {
            "id": self.paper.id,
            "title": self.paper.title,
            "score": round(self.score, 4),
            "snippet": self.snippet,
            "url": self.paper.url,
            "year": self.paper.year or None,
        }
        return row if rank is None else {"rank": rank, **row}


@dataclass(frozen=True)
class Allowed:
    """Which papers filters let through: a BM25 mask and, when small enough, the id set."""

    mask: np.ndarray
    ids: frozenset[str]


@dataclass(frozen=True)
class Hit:
    """One paper as ranked by one retriever."""

    paper_id: str
    score: float
    text: str = ""  # best chunk (dense side only)
    passages: tuple[tuple[Passage, float], ...] = ()
    """Body passages that matched, with this retriever's score, best first."""


def _allowed(index: PaperIndex, filters: RetrievalFilters | None) -> Allowed | None:
    """Evaluate filters over the lexical index's per-paper metadata (None: no filters)."""
    if filters is None or filters.is_empty():
        return None
    mask, ids = index.lexical.allowed(filters)
    return Allowed(mask=mask, ids=ids)


@dataclass(frozen=True)
class _Shape:
    """What dense search needs to know about an index, cached per index revision."""

    paper_vectors: bool  # search per-paper vectors (abstract corpus)
    body_chunks: bool  # some chunks are located body passages (long documents)


def _shape(index: PaperIndex) -> _Shape:
    """Whether dense search may use the per-paper vectors, and whether body chunks exist.

    Per-paper vectors serve abstract corpora (at most PAPER_VECTOR_MAX_CHUNK_RATIO
    chunks per paper). A paper's record vector is the normalised mean of its chunk
    vectors, so for one-chunk papers it *is* the chunk vector. On the dev set (3% of
    abstracts split in two) it scored slightly higher than max-over-chunks (ict
    nDCG@10 0.647 vs 0.637). It is also ~5x cheaper: ids and distances only, whereas
    chunk hits need their llama-index metadata read to learn their paper. Long PDFs
    keep the chunk search, whose best chunk becomes the passage the LLM reads; a few
    PDFs among many abstracts get a second, body-only chunk search (dense_search).
    """
    revision = index.lexical.synced_revision()
    cached = _SHAPE_CACHE.get(index.location)
    if cached is None or cached[0] != revision:
        ratio = index.chunk_count() / max(index.paper_count(), 1)
        body = ratio > 1.0 and bool(
            index.chunks.get(where={"kind": "body"}, limit=1, include=[])["ids"]
        )
        cached = (revision, _Shape(ratio <= PAPER_VECTOR_MAX_CHUNK_RATIO, body))
        _SHAPE_CACHE[index.location] = cached
    return cached[1]


_SHAPE_CACHE: dict[str, tuple[str, _Shape]] = {}


def _fetch_size(base: int, allowed: Allowed | None, total: int, cap: int) -> int:
    """Over-fetch in proportion to how much a (large) filter will throw away."""
    if allowed is None or not allowed.ids:
        return base
    share = len(allowed.ids) / max(total, 1)
    return max(base, min(cap, math.ceil(1.5 * base / share)))


def dense_search(
    index: PaperIndex, embedding: Sequence[float], k: int, allowed: Allowed | None = None
) -> list[Hit]:
    """Top-k papers for one query embedding, each scored by its best chunk's cosine.

    Filters arrive as an allowed-id set. Up to PUSHDOWN_MAX_IDS ids go to Chroma; a
    larger set is applied to an over-fetched list. Chroma's own metadata `where`
    was measured at ~0.85 s per query at 50k papers, so it is not used for filters.
    """
    if allowed is not None and not allowed.ids:
        return []
    shape = _shape(index)
    if not shape.paper_vectors:
        return _chunk_search(index, embedding, k, allowed, body_only=False)
    small = allowed is not None and len(allowed.ids) <= PUSHDOWN_MAX_IDS
    total = index.lexical.count()
    result = index.papers.query(
        query_embeddings=[list(embedding)], include=["distances"],
        ids=sorted(allowed.ids) if small else None,
        n_results=min(total, _fetch_size(k, None if small else allowed, total, 2000)),
    )  # fmt: skip
    hits = [
        Hit(paper_id, 1.0 - float(distance))
        for paper_id, distance in zip(result["ids"][0], result["distances"][0])
        if allowed is None or paper_id in allowed.ids
    ]
    if not shape.body_chunks:
        return hits[:k]
    return _merge_body_hits(hits, _chunk_search(index, embedding, k, allowed, body_only=True))[:k]


def _merge_body_hits(papers: list[Hit], bodies: list[Hit]) -> list[Hit]:
    """Per paper, the better of its paper-vector cosine and its best body chunk's cosine
    (both cosines of one model, so comparable); body passages are kept."""
    merged = {hit.paper_id: hit for hit in papers}
    for body in bodies:
        known = merged.get(body.paper_id)
        if known is None or body.score > known.score:
            merged[body.paper_id] = body
        else:
            merged[body.paper_id] = Hit(known.paper_id, known.score, known.text, body.passages)
    return sorted(merged.values(), key=lambda hit: hit.score, reverse=True)


def _chunk_search(
    index: PaperIndex, embedding: Sequence[float], k: int, allowed: Allowed | None,
    body_only: bool,
) -> list[Hit]:  # fmt: skip
    """Papers by their best chunk (all chunks, or only located body chunks), with the
    body chunks that matched as passages."""
    small = allowed is not None and len(allowed.ids) <= PUSHDOWN_MAX_IDS
    total = index.lexical.count()
    fetch = max(index.settings.chunk_candidates, 2 * k)
    where: list[dict] = [{"kind": "body"}] if body_only else []
    if small:
        where.append({"document_id": {"$in": sorted(allowed.ids)}})
    result = index.chunks.query(
        query_embeddings=[list(embedding)], include=["documents", "metadatas", "distances"],
        where=where[0] if len(where) == 1 else ({"$and": where} if where else None),
        n_results=_fetch_size(fetch, None if small else allowed, total, 400),
    )  # fmt: skip
    best: dict[str, Hit] = {}
    passages: dict[str, list[tuple[Passage, float]]] = {}
    for document, meta, distance in zip(
        result["documents"][0], result["metadatas"][0], result["distances"][0]
    ):
        paper_id = chunk_paper_id(meta)
        if allowed is not None and paper_id not in allowed.ids:
            continue
        cosine = 1.0 - float(distance)
        if meta.get("kind", "body") == "body":
            passages.setdefault(paper_id, []).append((chunk_passage(document, meta), cosine))
        if paper_id not in best or cosine > best[paper_id].score:
            best[paper_id] = Hit(paper_id, cosine, chunk_text(document, meta))
    ranked = sorted(best.values(), key=lambda hit: hit.score, reverse=True)[:k]
    return [
        Hit(hit.paper_id, hit.score, hit.text, tuple(passages.get(hit.paper_id, ())))
        for hit in ranked
    ]


def lexical_search(
    index: PaperIndex, query: str, k: int, allowed: Allowed | None = None
) -> list[Hit]:
    """Top-k papers by BM25, each by its best row (title + abstract, or a body passage)."""
    mask = allowed.mask if allowed is not None else None
    per_paper = index.settings.source_passages
    return [
        Hit(hit.paper_id, hit.score, passages=tuple(hit.passages))
        for hit in index.lexical.search_passages(query, k, mask, per_paper)
    ]


def matched_passages(
    lexical: Sequence[Hit], dense: Sequence[Hit], limit: int
) -> dict[str, list[Passage]]:
    """Per paper, the body passages that matched, best first: BM25's, then dense's.

    Within one paper BM25 picks the answering passage far better than MiniLM: on the
    full-text dev set (bench/fulltext_dev.jsonl) the span was in BM25's top 4 passages
    of the right paper for 0.92 of the questions, in the top 4 by cosine for 0.62, and
    in reciprocal-rank fusions of the two for 0.77–0.88 (docs/pdf.md). So BM25's
    passages come first and dense chunk hits fill the remaining places (they matter
    when the question shares no term with the body). The same text counts once.
    """
    found: dict[str, dict[str, Passage]] = {}
    for ranking in (lexical, dense):
        for hit in ranking:
            per_paper = found.setdefault(hit.paper_id, {})
            for passage, _ in hit.passages:
                if len(per_paper) < limit:
                    per_paper.setdefault(" ".join(passage.text.split()), passage)
    return {paper_id: list(kept.values()) for paper_id, kept in found.items() if kept}


def rrf(rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int) -> dict[str, float]:
    """Reciprocal-rank fusion: sum of weight / (k + rank); robust to incomparable scores."""
    fused: dict[str, float] = {}
    for hits, weight in zip(rankings, weights):
        for rank, hit in enumerate(hits, start=1):
            fused[hit.paper_id] = fused.get(hit.paper_id, 0.0) + weight / (k + rank)
    return fused


def score_fusion(rankings: Sequence[Sequence[Hit]], weights: Sequence[float]) -> dict[str, float]:
    """Weighted sum of min-max normalised scores (a paper missing from a list adds 0)."""
    fused: dict[str, float] = {}
    for hits, weight in zip(rankings, weights):
        if not hits:
            continue
        scores = [hit.score for hit in hits]
        low, span = min(scores), (max(scores) - min(scores)) or 1.0
        for hit in hits:
            fused[hit.paper_id] = fused.get(hit.paper_id, 0.0) + weight * (hit.score - low) / span
    return fused


def fuse(dense: Sequence[Hit], lexical: Sequence[Hit], settings: Settings) -> list[Hit]:
    """One paper ranking from two; the dense side's best chunk is kept as the text."""
    weights = (2 * settings.dense_weight, 2 * (1 - settings.dense_weight))
    if settings.fusion == "rrf":
        fused = rrf((dense, lexical), weights, settings.rrf_k)
    else:
        fused = score_fusion((dense, lexical), weights)
    texts = {hit.paper_id: hit.text for hit in dense if hit.text}
    ranked = sorted(fused.items(), key=lambda item: item[1], reverse=True)
    return [Hit(paper_id, score, texts.get(paper_id, "")) for paper_id, score in ranked]


def _rank(
    index: PaperIndex, query: str, embedding: Sequence[float] | None, k: int,
    filters: RetrievalFilters | None,
) -> list[Source]:  # fmt: skip
    settings = index.settings
    allowed = _allowed(index, filters)
    pool = max(settings.fusion_candidates, k)
    if settings.rerank != "off":
        pool = max(pool, settings.rerank_candidates)
    mode = settings.retrieval_mode
    dense = dense_search(index, embedding, pool, allowed) if mode != "lexical" else []
    lexical = lexical_search(index, query, pool, allowed) if mode != "dense" else []
    ranked = fuse(dense, lexical, settings) if mode == "hybrid" else (dense or lexical)
    if settings.rerank != "off":
        head = ranked[: settings.rerank_candidates]
        papers = index.get_papers([hit.paper_id for hit in head])
        ranked = rerank(settings, query, [hit for hit in head if hit.paper_id in papers], papers)
    ranked = ranked[:k]
    papers = index.get_papers([hit.paper_id for hit in ranked])
    cosine = {hit.paper_id: hit.score for hit in dense}
    passages = matched_passages(lexical, dense, settings.source_passages)
    sources = []
    for hit in ranked:
        if hit.paper_id not in papers:
            continue
        found = passages.get(hit.paper_id, [])
        text = hit.text or (found[0].text if found else papers[hit.paper_id].abstract)
        sources.append(
            Source(paper=papers[hit.paper_id], score=hit.score, best_chunk=text,
                   similarity=cosine.get(hit.paper_id), passages=found)
        )  # fmt: skip
    return sources


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Run the query encoder with `count` intra-op threads, then restore the previous count."""
    import torch  # only the torch backend needs it: the exported ones load no torch (~0.3 GB)

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def embed_queries(index: PaperIndex, texts: Sequence[str]) -> list[list[float]]:
    """Query vectors, in batches (embed_batch_size), with `query_threads` torch threads
    when the torch backend embeds them."""
    if index.settings.embed_backend != "torch" or index.settings.embed_endpoint:
        return index.embedder.get_text_embedding_batch(list(texts))
    with _torch_threads(index.settings.query_threads):
        return index.embedder.get_text_embedding_batch(list(texts))


def _ready(index: PaperIndex) -> bool:
    """See other processes' writes (dense and lexical; cheap when nothing changed: one
    revision read serves both, a Chroma call less per question); False if the index is
    empty."""
    revision = index.revision()
    index.refresh(revision)
    index.lexical.sync_with(index, revision)
    return index.lexical.count() > 0


def retrieve(
    index: PaperIndex, query: str, k: int | None = None, filters: RetrievalFilters | None = None
) -> list[Source]:
    """The top-k papers for a question (empty list on an empty index or blank query)."""
    if not query.strip() or not _ready(index):
        return []
    embedding = None
    if index.settings.retrieval_mode != "lexical":
        embedding = embed_queries(index, [query])[0]
    return _rank(index, query, embedding, k or index.settings.top_k, filters)


def retrieve_batch(
    index: PaperIndex, queries: Sequence[tuple[str, str]], k: int,
    filters: RetrievalFilters | None = None,
) -> dict[str, list[Source]]:  # fmt: skip
    """Rank papers for many (query_id, text) pairs, embedding the texts in batches."""
    if not queries or not _ready(index):
        return {qid: [] for qid, _ in queries}
    embeddings: list[list[float] | None] = [None] * len(queries)
    if index.settings.retrieval_mode != "lexical":
        embeddings = embed_queries(index, [text for _, text in queries])
    return {
        qid: _rank(index, text, embedding, k, filters)
        for (qid, text), embedding in zip(queries, embeddings)
    }


def read_queries(path: Path) -> list[tuple[str, str]]:
    """BEIR queries.jsonl: one {"_id", "text"} object per line."""
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            queries.append((str(record.get("_id", record.get("id"))), str(record["text"])))
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise ValueError(f"{path}:{number}: expected a JSON object with _id and text") from None
    return queries


def trec_run_lines(results: dict[str, list[Source]], tag: str) -> list[str]:
    """TREC run format: qid Q0 doc rank score tag."""
    return [
        f"{qid} Q0 {source.paper.id} {rank} {source.score:.6f} {tag}"
        for qid, sources in results.items()
        for rank, source in enumerate(sources, start=1)
    ]


def sources_json(sources: Sequence[Source]) -> list[dict]:
    return [source.as_json(rank) for rank, source in enumerate(sources, start=1)]
