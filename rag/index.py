"""The paper index: chunks and papers in Chroma, embedded with the bundled model.

Two collections per index: `<name>_chunks` (what dense retrieval searches:
a chunk's vector, its text and where it sits in its paper, see chunk_record) and
`<name>_papers` (one record per paper: the abstract the LLM reads and the
metadata a citation shows). A paper's record is written only after all of its chunks, so a crash
mid-ingest leaves at worst orphan chunks, which the next ingest replaces.

One writer at a time: every write (ingest batch, delete, repair) holds an
exclusive `fcntl` lock on `<index>/.write.lock`. A local (persistent) Chroma
keeps each collection's HNSW graph in the memory of the process that loaded
it and writes it back to disk from there, so two processes writing at once
overwrite each other's graph files and papers silently lose their vectors.
Under the lock a writer first re-opens its Chroma view when the index changed
since it last looked (the revision token), so it builds on the other writer's
data instead of its own stale copy. Readers (the chat UI) re-open their view
the same way when the revision changes, under a shared lock, so they see
papers other processes added. Several processes that must write at the same
time should share a `chroma run` server (settings chroma_host/chroma_port).
"""

from __future__ import annotations

import dataclasses
import fcntl
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from queue import Queue

import chromadb
import numpy as np
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings
from chromadb.config import System
from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo

from rag.embedder import (
    EmbeddingProcess, backend_for_label, embedder_label, encoder_spec, load_embedder,
)  # fmt: skip
from rag.identity import ENRICHED_FIELDS, fill_blanks
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


def chunk_record(node: BaseNode) -> dict[str, str | int]:
    """A chunk's Chroma metadata: its paper, its location and its text, nothing else.

    The text is a metadata value, not the record's document: local Chroma indexes every
    document for full-text search (trigrams, inside the GIL), which nothing here uses
    (BM25 is rag/lexical.py). The paper's own metadata lives once, in the papers
    collection (filters read it from the lexical index). Against llama-index's record
    (17 keys, text as document) this writes 3,000 abstract chunks in 2.9 instead of
    6.8 CPU s, the largest part of the ingest's own work beside the embedder.
    """
    return {
        "document_id": str(node.ref_doc_id),
        **{key: node.metadata[key] for key in LOCATION_KEYS},
        "text": node.get_content(metadata_mode=MetadataMode.NONE),
    }


def chunk_text(document: str | None, metadata: dict) -> str:
    """A stored chunk's text: in its metadata, or (indexes written before chunk_record)
    its document."""
    return str(metadata.get("text") or document or "")


def chunk_paper_id(metadata: dict) -> str:
    """The paper a stored chunk belongs to (every writer so far set document_id)."""
    return str(metadata.get("document_id") or metadata.get("paper_id") or "")


def chunk_passage(document: str | None, metadata: dict) -> Passage:
    """A chunk read back from Chroma as a Passage (old chunks: kind "body", no page)."""
    return Passage(
        text=chunk_text(document, metadata),
        kind=str(metadata.get("kind") or "body"),
        page=int(metadata.get("page") or 0) or None,
        section=str(metadata.get("section") or ""),
    )


def _number_chunks(nodes: Sequence[BaseNode]) -> None:
    """Give chunks ids derived from their paper ("<paper id>#chunk<n>") instead of random
    ones, so writing a paper's chunks twice stores them once (Chroma ignores an add of an
    id it has): two workers on different machines that pass the "already stored?" check
    for the same paper at the same time cannot leave duplicate chunks. Links between
    neighbouring chunks are renamed with them."""
    renamed: dict[str, str] = {}
    counts: dict[str, int] = {}
    for node in nodes:
        number = counts[node.ref_doc_id] = counts.get(node.ref_doc_id, -1) + 1
        renamed[node.node_id] = node.id_ = f"{node.ref_doc_id}#chunk{number}"
    for node in nodes:
        for key in (NodeRelationship.PREVIOUS, NodeRelationship.NEXT):
            link = node.relationships.get(key)
            if isinstance(link, RelatedNodeInfo) and link.node_id in renamed:
                link.node_id = renamed[link.node_id]


def _embed_texts(nodes: Sequence[BaseNode]) -> list[str]:
    """What the embedder reads of each chunk: its text (the metadata is excluded)."""
    return [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]


def _embedded(
    papers: list[Paper], nodes: list[BaseNode], vectors: Callable[[], list[list[float]]],
    records: int,
) -> tuple[list[Paper], list[BaseNode], int]:  # fmt: skip
    """A batch with its vectors (waited for, when a child process computes them) on its
    chunks."""
    for node, vector in zip(nodes, vectors(), strict=True):
        node.embedding = vector
    return papers, nodes, records


class IndexMismatchError(RuntimeError):
    """The index was built with another embedder than the one configured."""


class IndexBusyError(RuntimeError):
    """Another process kept the index's write lock longer than write_lock_timeout_s."""


READER_LOCK_WAIT_S = 10.0
"""How long a reader waits for a writer's batch before it keeps its current view."""
LOCK_POLL_S = 0.2

_PROCESS_LOCKS: dict[Path, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.RLock:
    """One re-entrant lock per lock file and process: flock does not exclude threads that
    share a process from each other re-entrantly, so threads queue here first."""
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(path, threading.RLock())


def _flock(handle, mode: int, timeout_s: float) -> bool:
    """Take an flock within timeout_s (bounded polling, so a timeout is possible)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(LOCK_POLL_S)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class AddResult:
    added: int
    duplicates: int
    notes: list[str] = field(default_factory=list)


class PaperIndex:
    """Chroma-backed store of papers and their chunks; the only writer of the index."""

    def __init__(self, settings: Settings, on_wait: Callable[[str], None] = _say):
        self.settings = settings
        self.on_wait = on_wait
        """Told once when a write has to wait for another process's write."""
        settings.index.mkdir(parents=True, exist_ok=True)
        self.lock_path = settings.index / ".write.lock"
        if settings.chroma_host:
            self.location = f"chroma://{settings.chroma_host}:{settings.chroma_port}"
        else:
            self.location = str(settings.index)
        self.embedder_label = embedder_label(settings)
        self._write_depth = 0
        self._told_wait = False  # the waiting message is said once per add/delete call
        self._own_revision = ""  # the revision our last write left (see _mark_lexical_synced)
        self._others_wrote = True
        self._refresh_guard = threading.Lock()
        self._system: System | None = None  # this object's own Chroma System (local index)
        self._retired: System | None = None
        self._connect()

    def _connect(self) -> None:
        """Open (or re-open) the Chroma client and both collections; remember the revision.

        A PersistentClient shares one Chroma `System` per path within a process, and
        that System loads each HNSW graph once and never re-reads it, so another
        process's writes stay invisible to dense search (and a filtered query for
        their ids fails with "Error finding id"). Dropping the path from chromadb's
        cache makes the next client load the graph and the write log from disk
        afresh. The view before the previous one is stopped (its memory freed: ~5 MB per
        re-open otherwise stays); the previous one stays usable for queries in flight.
        """
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if self.settings.chroma_host:
            self.client = chromadb.HttpClient(
                host=self.settings.chroma_host, port=self.settings.chroma_port,
                settings=chroma_settings,
            )  # fmt: skip
        else:
            path = str(self.settings.index / "chroma")
            if self._retired is not None:
                self._retired.stop()
            self._retired = self._system
            SharedSystemClient._identifier_to_system.pop(path, None)
            self.client = chromadb.PersistentClient(path=path, settings=chroma_settings)
            self._system = SharedSystemClient._identifier_to_system[path]
        label = self.embedder_label
        space = {"hnsw:space": "cosine", "embedder": label}
        self.chunks = self.client.get_or_create_collection(
            f"{self.settings.collection}_chunks", metadata=space, embedding_function=None
        )
        self.papers = self.client.get_or_create_collection(
            f"{self.settings.collection}_papers", metadata=space, embedding_function=None
        )
        built_with = (self.chunks.metadata or {}).get("embedder", label)
        backend = backend_for_label(self.settings, built_with) if built_with != label else None
        if backend:  # built with another local backend of this model: keep using its vectors
            self.settings = self.settings.model_copy(update={"embed_backend": backend})
            self.embedder_label = built_with
            self.__dict__.pop("embedder", None)
        elif built_with != label:
            elsewhere = (
                f"use another collection (setting collection, now '{self.settings.collection}')"
                if self.settings.chroma_host else "use another --index"
            )  # fmt: skip
            raise IndexMismatchError(
                f"index at {self.location} was built with embedder '{built_with}', "
                f"but '{label}' is configured; configure that embedder or {elsewhere}"
            )
        self._view_revision = self.revision()

    # --- one writer, fresh readers ------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the index's exclusive write lock (re-entrant within this object).

        Waits for another writer with one message, up to write_lock_timeout_s; then
        raises IndexBusyError. On entry the Chroma view is re-opened if anyone wrote
        since it was opened, and the revision is bumped so readers re-open theirs.
        """
        process_lock = _process_lock(self.lock_path)
        timeout = self.settings.write_lock_timeout_s
        if not process_lock.acquire(timeout=timeout):
            raise self._busy(timeout)
        try:
            if self._write_depth:
                self._write_depth += 1
                try:
                    yield
                finally:
                    self._write_depth -= 1
                return
            with open(self.lock_path, "a") as handle:
                if not _flock(handle, fcntl.LOCK_EX, 0):
                    if not self._told_wait:
                        self._told_wait = True
                        self.on_wait(
                            f"another process is writing to {self.location}; waiting… "
                            f"(up to {timeout:g} s, setting write_lock_timeout_s)"
                        )
                    if not _flock(handle, fcntl.LOCK_EX, timeout):
                        raise self._busy(timeout)
                self._write_depth = 1
                try:
                    current = self.revision()
                    if current != self._view_revision:
                        self._connect()
                    if current != self._own_revision:
                        self._others_wrote = True
                    self._bump_revision()
                    yield
                finally:
                    self._write_depth = 0
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            process_lock.release()

    def _busy(self, timeout: float) -> IndexBusyError:
        return IndexBusyError(
            f"another process is still writing to {self.location} after {timeout:g} s; "
            "try again later or raise write_lock_timeout_s (env RAG_WRITE_LOCK_TIMEOUT_S)"
        )

    def refresh(self, revision: str | None = None) -> bool:
        """Re-open the Chroma view when another process wrote since; True when it did.

        Cheap when nothing changed (one revision read, or none when the caller passes
        the `revision` it just read). The re-open waits for a
        writer's current batch under a shared lock, so it never loads a half-written
        graph; if the writer holds on longer than READER_LOCK_WAIT_S the current
        view is kept for now. A `chroma run` server has one view for everyone.
        """
        if self.settings.chroma_host or self._write_depth:
            return False
        with self._refresh_guard:
            if (self.revision() if revision is None else revision) == self._view_revision:
                return False
            with open(self.lock_path, "a") as handle:
                if not _flock(handle, fcntl.LOCK_SH, READER_LOCK_WAIT_S):
                    return False
                try:
                    self._connect()
                    # Load both graphs (and replay the write log) while writers wait.
                    self.chunks.count()
                    self.papers.count()
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return True

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
        self._view_revision = revision  # our own write: our view is current
        self._own_revision = revision
        return revision

    def _begin_call(self) -> None:
        """Start of an add/delete call: say "waiting" at most once; note whether the BM25
        index is in step with Chroma now (no other client has written since it synced)."""
        self._told_wait = False
        self._own_revision = self.revision()
        self._others_wrote = self.lexical.synced_revision() != self._own_revision

    def _mark_lexical_synced(self) -> None:
        """After our own write reached BM25: record the new revision as synced only when no
        other client wrote during this call. Another machine's papers never reach this
        directory's BM25 index (server mode), so claiming the revision would hide them from
        `sync_with` whenever the paper counts happen to agree; unclaimed, the next query
        diffs ids and catches up."""
        revision = self._bump_revision()
        if not self._others_wrote:
            self.lexical.mark_synced(revision)

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
            paper_id: Paper.from_metadata(metadata, document)
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
        for document, metadata in zip(result["documents"], result["metadatas"]):
            paper_id = chunk_paper_id(metadata)
            passage = chunk_passage(document, metadata)
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
                yield Paper.from_metadata(metadata, document)
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

    def _child_embedder(self) -> EmbeddingProcess | None:
        """An embedding process for a multi-batch ingest: exported local models only (an
        endpoint's embedding is I/O, which frees the GIL; PyTorch has no Encoder)."""
        spec = encoder_spec(self.settings) if self.settings.ingest_embed_process else None
        return EmbeddingProcess(spec) if spec else None

    def _chunk_and_embed(
        self, papers: Sequence[Paper], notes: list[str] | None = None
    ) -> list[BaseNode]:
        """Chunk (see _chunks) and embed with the index's embedder."""
        nodes = self._chunks(papers, notes)
        return _embedded([], nodes, self._embed_later(_embed_texts(nodes), None), 0)[1]

    def _embed_later(
        self, texts: list[str], child: EmbeddingProcess | None
    ) -> Callable[[], list[list[float]]]:
        """`texts`' vectors: queued in the embedding process, or computed here now."""
        if child is not None:
            return child.embed_later(texts)
        vectors = self.embedder.get_text_embedding_batch(texts) if texts else []
        return lambda: vectors

    def _chunks(self, papers: Sequence[Paper], notes: list[str] | None = None) -> list[BaseNode]:
        """Split, keep at most max_chunks_per_paper chunks per paper (saying so)."""
        nodes = self.splitter(self._documents(papers))
        # Passage documents need ids of their own (the splitter maps metadata by document
        # id); every chunk still belongs to its paper, which deletes, means and caps go by.
        for node in nodes:
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(
                node_id=str(node.metadata["paper_id"])
            )
        cap = self.settings.max_chunks_per_paper
        counts: dict[str, int] = {}
        for node in nodes:
            counts[node.ref_doc_id] = counts.get(node.ref_doc_id, 0) + 1
        if any(count > cap for count in counts.values()):
            seen: dict[str, int] = {}
            kept = []
            for node in nodes:
                seen[node.ref_doc_id] = seen.get(node.ref_doc_id, 0) + 1
                if seen[node.ref_doc_id] <= cap:
                    kept.append(node)
            nodes = kept
            for paper_id, count in counts.items():
                if count > cap and notes is not None:
                    notes.append(
                        f"{paper_id}: {count:,} chunks, only the first {cap:,} indexed "
                        "(setting max_chunks_per_paper)"
                    )
        _number_chunks(nodes)
        return nodes

    def _write(self, papers: Sequence[Paper], nodes: Sequence[BaseNode]) -> None:
        # Orphans of an interrupted earlier ingest. One call per batch: a where-delete
        # scans the collection, so one per paper made large ingests quadratic.
        self.chunks.delete(where={"document_id": {"$in": [paper.id for paper in papers]}})
        self.add_chunks(nodes)
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
            metadatas=[paper.record_metadata() for paper in papers],
        )

    def add_chunks(self, nodes: Sequence[BaseNode]) -> None:
        """Store embedded chunks (see chunk_record) in batches Chroma accepts."""
        size = self.client.get_max_batch_size()
        for start in range(0, len(nodes), size):
            batch = nodes[start : start + size]
            self.chunks.add(
                ids=[node.node_id for node in batch],
                embeddings=[node.get_embedding() for node in batch],
                metadatas=[chunk_record(node) for node in batch],
            )

    def add_papers(self, papers: Sequence[Paper], progress: Progress | None = None) -> AddResult:
        """Add papers not yet indexed (by id); duplicates within `papers` count once."""
        size = self.settings.ingest_batch_papers
        batches = (papers[start : start + size] for start in range(0, len(papers), size))
        return self.add_batches(batches, progress, total=len(papers))

    def add_batches(
        self, batches: Iterable[Sequence[Paper]], progress: Progress | None = None,
        total: int = 0,
    ) -> AddResult:  # fmt: skip
        """Add papers arriving in batches (streaming ingest); at most three batches are in
        memory.

        While batch k is chunked and embedded (the slow part, outside the write lock),
        one writer thread writes batch k-1 to Chroma and the BM25 index under the lock,
        skipping papers another writer stored in the meantime; a bounded queue of one
        batch keeps memory flat. A local embedder runs in a child process
        (EmbeddingProcess) from the second batch on (from the first when `total` says
        there will be more: this process then never loads the model), with the next
        batch queued behind the current one, so it never waits for this process's GIL.
        A caller that already holds the write lock (`rag repair`) writes in its own
        thread: another thread could not take that lock. `progress(done, total)` counts
        papers handled (written or skipped as duplicates); `total` is the caller's
        estimate (0: unknown).
        """
        self._begin_call()
        result = AddResult(added=0, duplicates=0)
        handled = [0]
        queue: Queue[tuple[list[Paper], list[BaseNode], int] | None] = Queue(maxsize=1)
        failure: list[BaseException] = []
        writer = None
        if not self._write_depth:
            writer = threading.Thread(
                target=self._write_queue, args=(queue, result, handled, failure),
                daemon=True, name="index-writer",
            )  # fmt: skip
            writer.start()

        def hand_over(fresh: list[Paper], nodes: list[BaseNode], records: int) -> None:
            if writer:
                queue.put((fresh, nodes, records))
            else:
                self._write_batch(fresh, nodes, result)
                handled[0] += records
            if progress:
                progress(handled[0], max(total, handled[0]))

        queued: set[str] = set()  # ids of this run already on their way to the index
        child: EmbeddingProcess | None = None
        embedding: deque[tuple[list[Paper], list[BaseNode], Callable[[], list], int]] = deque()
        try:
            for number, batch in enumerate(batches):
                if failure:
                    break
                unique: dict[str, Paper] = {}
                for paper in batch:
                    if paper.id not in queued:
                        unique.setdefault(paper.id, paper)
                already = self.existing_ids(list(unique))
                fresh = [paper for paper_id, paper in unique.items() if paper_id not in already]
                queued.update(unique)
                result.duplicates += len(batch) - len(fresh)
                if number == 1 or (number == 0 and total > self.settings.ingest_batch_papers):
                    child = child or self._child_embedder()  # more than one batch: it pays
                nodes = self._chunks(fresh, result.notes)
                vectors = self._embed_later(_embed_texts(nodes), child)
                embedding.append((fresh, nodes, vectors, len(batch)))
                if len(embedding) > (1 if child else 0):  # a child keeps the next one queued
                    hand_over(*_embedded(*embedding.popleft()))
            while embedding and not failure:
                hand_over(*_embedded(*embedding.popleft()))
        finally:
            if child:
                child.close()
            if writer:
                queue.put(None)
                writer.join()
        if failure:
            raise failure[0]
        if progress:  # done: the estimate gives way to what was really there
            progress(handled[0], handled[0])
        return result

    def _write_queue(
        self, queue: "Queue[tuple[list[Paper], list[BaseNode], int] | None]",
        result: AddResult, handled: list[int], failure: list[BaseException],
    ) -> None:  # fmt: skip
        """The writer thread of add_batches; the first error stops the writes and is
        re-raised in the calling thread."""
        while (item := queue.get()) is not None:
            papers, nodes, records = item
            if failure:
                continue  # drain, so the producer never blocks on a dead writer
            try:
                self._write_batch(papers, nodes, result)
                handled[0] += records
            except BaseException as exc:  # re-raised in the calling thread
                failure.append(exc)

    def _write_batch(self, papers: list[Paper], nodes: list[BaseNode], result: AddResult) -> None:
        """One embedded batch into Chroma and BM25 under the write lock, skipping papers
        another writer stored since they were embedded."""
        with self.writing():
            present = self.existing_ids([paper.id for paper in papers])
            todo = [paper for paper in papers if paper.id not in present]
            if todo:
                self._write(todo, [node for node in nodes if node.ref_doc_id not in present])
                self.lexical.add(todo)
                self._mark_lexical_synced()
        result.added += len(todo)
        result.duplicates += len(papers) - len(todo)

    def enrich_papers(self, papers: Sequence[Paper]) -> list[str]:
        """Fill stored papers' empty metadata from these records of the same papers (same
        id); returns the ids that changed.

        Only blank fields are filled (ENRICHED_FIELDS; the abstract only when the stored
        one is empty), so nothing a paper already has is lost; its chunks, vectors and
        passages stay. The paper record and its lexical row (filters read year and
        authors there; a filled abstract is new head text) are rewritten under the write
        lock; chunks hold no paper metadata (chunk_record), so they stay as they are.
        """
        self._begin_call()
        incoming = {paper.id: paper for paper in papers}

        def filled() -> list[Paper]:
            ids = sorted(incoming)
            changed = []
            for start in range(0, len(ids), GET_BATCH):
                for stored in self.get_papers(ids[start : start + GET_BATCH]).values():
                    paper = fill_blanks(stored, incoming[stored.id], ENRICHED_FIELDS)
                    if paper != stored:
                        changed.append(paper)
            return changed

        if not incoming or not filled():  # nothing to write: no lock, no new revision
            return []
        with self.writing():
            changed = filled()  # again under the lock: another writer may have filled them
            if not changed:
                return []
            # Metadata only: no documents, so Chroma has nothing to embed with its own
            # model (a download), and the vectors stay as they are.
            self.papers.update(
                ids=[paper.id for paper in changed],
                metadatas=[paper.record_metadata() for paper in changed],
            )
            bodies = self.body_passages([paper.id for paper in changed])
            self.lexical.add(
                [dataclasses.replace(p, passages=bodies.get(p.id, ())) for p in changed]
            )
            self._mark_lexical_synced()
        return [paper.id for paper in changed]

    def delete_paper(self, paper_id: str) -> bool:
        """Remove a paper and its chunks; False when it was not indexed."""
        self._begin_call()
        with self.writing():
            if not self.existing_ids([paper_id]):
                return False
            self.papers.delete(ids=[paper_id])
            self.chunks.delete(where={"document_id": paper_id})
            self.lexical.remove([paper_id])
            self._mark_lexical_synced()
        return True
