"""The paper index: chunks and papers in Chroma, embedded with the bundled model.

Two collections per index: `<name>_chunks` (what dense retrieval searches,
written through llama-index's Chroma vector store) and `<name>_papers` (one
record per paper: the abstract the LLM reads and the metadata a citation
shows). A paper's record is written only after all of its chunks, so a crash
mid-ingest leaves at worst orphan chunks, which the next ingest replaces.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from llama_index.core import Document
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode
from llama_index.vector_stores.chroma import ChromaVectorStore

from rag.embedder import embedder_label, load_embedder
from rag.lexical import LexicalIndex
from rag.papers import Paper
from rag.settings import Settings

Progress = Callable[[int, int], None]
"""Called as progress(done, total) while papers are embedded and written."""

GET_BATCH = 5000  # ids per Chroma get(): keeps SQLite's variable limit far away


class IndexMismatchError(RuntimeError):
    """The index was built with another embedder than the one configured."""


@dataclass
class AddResult:
    added: int
    duplicates: int


class PaperIndex:
    """Chroma-backed store of papers and their chunks; the only writer of the index."""

    def __init__(self, settings: Settings):
        self.settings = settings
        settings.index.mkdir(parents=True, exist_ok=True)
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if settings.chroma_host:
            self.client = chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
            )
            self.location = f"chroma://{settings.chroma_host}:{settings.chroma_port}"
        else:
            self.client = chromadb.PersistentClient(
                path=str(settings.index / "chroma"), settings=chroma_settings
            )
            self.location = str(settings.index)
        label = embedder_label(settings)
        space = {"hnsw:space": "cosine", "embedder": label}
        self.chunks = self.client.get_or_create_collection(
            f"{settings.collection}_chunks", metadata=space, embedding_function=None
        )
        self.papers = self.client.get_or_create_collection(
            f"{settings.collection}_papers", metadata=space, embedding_function=None
        )
        built_with = (self.chunks.metadata or {}).get("embedder", label)
        if built_with != label:
            raise IndexMismatchError(
                f"index at {self.location} was built with embedder '{built_with}', "
                f"but '{label}' is configured; use another --index"
            )
        self.embedder_label = label

    @cached_property
    def embedder(self):
        return load_embedder(self.settings)

    @cached_property
    def lexical(self) -> LexicalIndex:
        """The BM25 side index, in `index` even when vectors live on a Chroma server."""
        name = self.settings.collection
        if self.settings.chroma_host:
            name = f"{self.settings.chroma_host}_{self.settings.chroma_port}_{name}"
        return LexicalIndex(self.settings.index / "lexical" / name)

    @cached_property
    def vector_store(self) -> ChromaVectorStore:
        return ChromaVectorStore(chroma_collection=self.chunks)

    @cached_property
    def splitter(self) -> SentenceSplitter:
        return SentenceSplitter(
            chunk_size=self.settings.chunk_size, chunk_overlap=self.settings.chunk_overlap
        )

    # --- reading ---------------------------------------------------------------------
    def paper_count(self) -> int:
        return self.papers.count()

    def chunk_count(self) -> int:
        return self.chunks.count()

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), GET_BATCH):
            found.update(self.papers.get(ids=list(ids[start : start + GET_BATCH]), include=[])["ids"])
        return found

    def revision(self) -> str:
        """A token that changes on every write to the paper set (by any client of the index)."""
        papers = self.client.get_collection(self.papers.name, embedding_function=None)
        return str((papers.metadata or {}).get("revision", ""))

    def _bump_revision(self) -> str:
        """Record a write, so side indexes of other clients (server mode) notice it."""
        revision = uuid.uuid4().hex
        current = self.client.get_collection(self.papers.name, embedding_function=None).metadata
        # hnsw:* keys are fixed at creation; Chroma refuses to see them in a modify.
        kept = {k: v for k, v in (current or {}).items() if not k.startswith("hnsw:")}
        self.papers.modify(metadata={**kept, "revision": revision})
        return revision

    def all_ids(self) -> list[str]:
        """Every paper id (no documents): what the lexical index is synced against."""
        ids: list[str] = []
        while True:
            batch = self.papers.get(include=[], limit=GET_BATCH, offset=len(ids))["ids"]
            if not batch:
                return ids
            ids.extend(batch)

    def get_papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        """Paper records by id (missing ids are simply absent)."""
        if not ids:
            return {}
        result = self.papers.get(ids=list(ids), include=["documents", "metadatas"])
        return {
            paper_id: Paper.from_metadata(metadata, document or "")
            for paper_id, document, metadata in zip(
                result["ids"], result["documents"], result["metadatas"]
            )
        }

    def iter_papers(self, batch: int = 1000) -> Iterable[Paper]:
        """Every paper, in storage order (for listing and for side indexes)."""
        offset = 0
        while True:
            result = self.papers.get(
                include=["documents", "metadatas"], limit=batch, offset=offset
            )
            if not result["ids"]:
                return
            for document, metadata in zip(result["documents"], result["metadatas"]):
                yield Paper.from_metadata(metadata, document or "")
            offset += len(result["ids"])

    # --- writing ---------------------------------------------------------------------
    def _documents(self, papers: Sequence[Paper]) -> list[Document]:
        keys = list(Paper("", "", "").metadata())
        return [
            Document(
                id_=paper.id,
                text="\n\n".join(part for part in (paper.title, paper.abstract, paper.body) if part),
                metadata=paper.metadata(),
                excluded_embed_metadata_keys=keys,
                excluded_llm_metadata_keys=keys,
            )
            for paper in papers
        ]

    def _chunk_and_embed(self, papers: Sequence[Paper]) -> list[BaseNode]:
        pipeline = IngestionPipeline(transformations=[self.splitter, self.embedder])
        return pipeline.run(documents=self._documents(papers))

    def _write(self, papers: Sequence[Paper], nodes: Sequence[BaseNode]) -> None:
        # Orphans of an interrupted earlier ingest. One call per batch: a where-delete
        # scans the collection, so one per paper made large ingests quadratic.
        self.chunks.delete(where={"document_id": {"$in": [paper.id for paper in papers]}})
        self.vector_store.add(list(nodes))
        by_paper: dict[str, list[list[float]]] = {}
        for node in nodes:
            by_paper.setdefault(node.ref_doc_id, []).append(node.get_embedding())
        vectors = []
        for paper in papers:
            mean = np.mean(np.asarray(by_paper[paper.id], dtype=np.float32), axis=0)
            vectors.append((mean / (np.linalg.norm(mean) or 1.0)).tolist())
        self.papers.add(
            ids=[paper.id for paper in papers],
            embeddings=vectors,
            documents=[paper.abstract for paper in papers],
            metadatas=[paper.metadata() for paper in papers],
        )

    def add_papers(self, papers: Sequence[Paper], progress: Progress | None = None) -> AddResult:
        """Add papers not yet indexed (by id); duplicates within `papers` count once."""
        unique: dict[str, Paper] = {}
        for paper in papers:
            unique.setdefault(paper.id, paper)
        already = self.existing_ids(list(unique))
        fresh = [paper for paper_id, paper in unique.items() if paper_id not in already]
        batch = self.settings.ingest_batch_papers
        for start in range(0, len(fresh), batch):
            chunk = fresh[start : start + batch]
            self._write(chunk, self._chunk_and_embed(chunk))
            if progress:
                progress(min(start + batch, len(fresh)), len(fresh))
        if fresh:
            self.lexical.add(fresh)
            self.lexical.mark_synced(self._bump_revision())
        return AddResult(added=len(fresh), duplicates=len(papers) - len(fresh))

    def delete_paper(self, paper_id: str) -> bool:
        """Remove a paper and its chunks; False when it was not indexed."""
        if not self.existing_ids([paper_id]):
            return False
        self.papers.delete(ids=[paper_id])
        self.chunks.delete(where={"document_id": paper_id})
        self.lexical.remove([paper_id])
        self.lexical.mark_synced(self._bump_revision())
        return True
