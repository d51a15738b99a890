"""Question → ranked papers. Chunks are searched; papers are what is returned.

A paper's score is its best chunk's cosine similarity; its text for the LLM is
the abstract (for long PDFs, the best-matching chunk follows the abstract).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from llama_index.core.vector_stores import VectorStoreQuery

from rag.filters import RetrievalFilters
from rag.index import PaperIndex
from rag.papers import Paper

SNIPPET_CHARS = 240


@dataclass
class Source:
    """A retrieved paper, as shown to the LLM and to the reader."""

    paper: Paper
    score: float
    best_chunk: str

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


def _cosine(chroma_similarity: float) -> float:
    """llama-index reports exp(-distance); with cosine space distance = 1 - cos."""
    return 1.0 + math.log(max(chroma_similarity, 1e-12))


def _collapse(
    index: PaperIndex, node_ids_texts_scores: Iterable[tuple[str, str, float]], k: int
) -> list[Source]:
    best: dict[str, tuple[float, str]] = {}
    for paper_id, text, score in node_ids_texts_scores:
        if paper_id not in best or score > best[paper_id][0]:
            best[paper_id] = (score, text)
    ranked = sorted(best.items(), key=lambda item: item[1][0], reverse=True)[:k]
    papers = index.get_papers([paper_id for paper_id, _ in ranked])
    return [
        Source(paper=papers[paper_id], score=score, best_chunk=text)
        for paper_id, (score, text) in ranked
        if paper_id in papers
    ]


def dense_search(index: PaperIndex, embedding: Sequence[float], k: int) -> list[Source]:
    """Top-k papers for one query embedding, by their best chunk."""
    fetch = max(index.settings.chunk_candidates, 4 * k)
    result = index.vector_store.query(
        VectorStoreQuery(query_embedding=list(embedding), similarity_top_k=fetch)
    )
    return _collapse(
        index,
        (
            (node.ref_doc_id or node.metadata.get("paper_id", ""), node.get_content(), _cosine(sim))
            for node, sim in zip(result.nodes, result.similarities)
        ),
        k,
    )


def retrieve(
    index: PaperIndex, query: str, k: int | None = None, filters: RetrievalFilters | None = None
) -> list[Source]:
    """The top-k papers for a question (empty list on an empty index).

    `filters` is accepted but not applied yet: the hybrid-retrieval work adds it.
    """
    if index.chunk_count() == 0 or not query.strip():
        return []
    embedding = index.embedder.get_query_embedding(query)
    return dense_search(index, embedding, k or index.settings.top_k)


def retrieve_batch(
    index: PaperIndex, queries: Sequence[tuple[str, str]], k: int
) -> dict[str, list[Source]]:
    """Rank papers for many (query_id, text) pairs, embedding the texts in batches."""
    embeddings = index.embedder.get_text_embedding_batch([text for _, text in queries])
    return {qid: dense_search(index, emb, k) for (qid, _), emb in zip(queries, embeddings)}


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

