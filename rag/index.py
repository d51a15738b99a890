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
from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo
from llama_index.vector_stores.chroma import ChromaVectorStore

from rag.embedder import embedder_label, load_embedder
from rag.lexical import LexicalIndex
from rag.papers import Paper, Passage
from rag.settings import Settings

Progress = Callable[[int, int], None]
"""Called as progress(done, total) while papers are embedded and written."""

GET_BATCH = 5000  # ids per Chroma get(): keeps SQLite's variable limit far away


LOCATION_KEYS = ("kind", "page", "section")
"""Chunk metadata locating a chunk in its paper. Indexes built before it have none: their
chunks read back as unlocated body text (location "body")."""


def passage_metadata(passage: Passage) -> dict[str, str | int]:
    """Chroma-safe location of a chunk (page 0 = unknown)."""
    return {"kind": passage.kind, "page": passage.page or 0, "section": passage.section}


def chunk_passage(text: str, metadata: dict) -> Passage:
    """A chunk read back from Chroma as a Passage (old chunks: kind "body", no page)."""
    return Passage(
        text=text,
        kind=str(metadata.get("kind") or "body"),
        page=int(metadata.get("page") or 0) or None,
        section=str(metadata.get("section") or ""),
    )


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
        label = embedder_label(settings.embed_model)
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
        return load_embedder(self.settings.embed_model, self.settings.embed_batch_size)

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

    def body_passages(self, ids: Sequence[str]) -> dict[str, tuple[Passage, ...]]:
        """Body passages of these papers, read back from their chunks (for side indexes).

        Chunks written with a location give kind "body" passages directly. Older
        indexes have no kind: there, a paper with more than one chunk is a long
        document and all its chunks count as (unlocated) body passages.
        """
        if not ids or self.chunk_count() <= self.paper_count():
            return {}  # one chunk per paper: nothing beyond abstracts anywhere
        result = self.chunks.get(
            where={"document_id": {"$in": list(ids)}}, include=["documents", "metadatas"]
        )
        located: dict[str, list[Passage]] = {}
        unlocated: dict[str, list[Passage]] = {}
        for text, metadata in zip(result["documents"], result["metadatas"]):
            paper_id = str(metadata.get("paper_id") or metadata.get("document_id"))
            passage = chunk_passage(text or "", metadata)
            if "kind" in metadata:
                if passage.kind == "body":
                    located.setdefault(paper_id, []).append(passage)
            else:
                unlocated.setdefault(paper_id, []).append(passage)
        located.update(
            (paper_id, passages) for paper_id, passages in unlocated.items() if len(passages) > 1
        )
        return {
            paper_id: tuple(sorted(passages, key=lambda p: p.page or 0))
            for paper_id, passages in located.items()
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
        """One llama-index document per paper, or, for papers with located body passages
        (PDFs), one for title + abstract and one per passage, so every chunk carries its
        kind ("abstract"/"body"), page and section into Chroma (see passage_metadata)."""
        keys = [*Paper("", "", "").metadata(), *LOCATION_KEYS]
        documents = []
        for paper in papers:
            head = "\n\n".join(part for part in (paper.title, paper.abstract) if part)
            parts = [(head, Passage(paper.abstract))]
            if paper.passages:
                parts += [(passage.text, passage) for passage in paper.passages]
            elif paper.body:
                parts = [(f"{head}\n\n{paper.body}", Passage(paper.abstract))]
            documents += [
                Document(
                    id_=paper.id if number == 0 else f"{paper.id}#{number}",
                    text=text,
                    metadata={**paper.metadata(), **passage_metadata(passage)},
                    excluded_embed_metadata_keys=keys,
                    excluded_llm_metadata_keys=keys,
                )
                for number, (text, passage) in enumerate(parts)
            ]
        return documents

    def _chunk_and_embed(self, papers: Sequence[Paper]) -> list[BaseNode]:
        pipeline = IngestionPipeline(transformations=[self.splitter, self.embedder])
        nodes = pipeline.run(documents=self._documents(papers))
        # Passage documents need ids of their own (the splitter maps metadata by document
        # id); every chunk still belongs to its paper, which deletes and means go by.
        for node in nodes:
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(
                node_id=str(node.metadata["paper_id"])
            )
        return nodes

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
