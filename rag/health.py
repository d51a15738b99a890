"""`rag check` and `rag repair`: find and fix what a crash or an unlocked writer leaves.

Faults, each found by looking at the index as a fresh process sees it:

- `no-vector`: a paper (or one of its chunks) is stored but missing from Chroma's
  HNSW graph, so dense search cannot return it and a filtered query naming it
  fails ("Error finding id"). Two processes writing a local index at once did this.
- `no-chunks`: a paper record without chunks (dense chunk search cannot find it).
- `orphan-chunks`: chunks whose paper record was never written (killed ingest).
- `lexical-drift`: the BM25 index holds other papers than Chroma (in server mode, after
  catching up with the server as any query does).
- `leftover`: a killed BM25 rebuild's generation directory or staging file, or an
  uploaded file that no paper comes from.

Repair re-embeds papers from what is stored (the papers collection keeps the
abstract; a PDF's full text is re-read from its source file when it still
exists, else the paper is re-indexed from its abstract and the report says so),
all under the index's write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from chromadb.errors import ChromaError

from rag.formats import FormatError, parse_file
from rag.index import GET_BATCH, PaperIndex, chunk_paper_id
from rag.papers import Paper


@dataclass(frozen=True)
class Problem:
    kind: str  # no-vector | no-chunks | orphan-chunks | lexical-drift | leftover
    subject: str  # paper id, chunk document id, or path
    detail: str

    def line(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"

    def as_json(self) -> dict:
        return asdict(self)


def _unreachable(collection, ids: Sequence[str]) -> list[str]:
    """Ids whose vector the collection's HNSW graph lacks (bisects failing batches)."""
    if not ids:
        return []
    try:
        collection.get(ids=list(ids), include=["embeddings"])
        return []
    except ChromaError:
        if len(ids) == 1:
            return list(ids)
    middle = len(ids) // 2
    return _unreachable(collection, ids[:middle]) + _unreachable(collection, ids[middle:])


def _chunk_owners(index: PaperIndex) -> dict[str, list[str]]:
    """Chunk ids per paper id (document_id), read in pages."""
    owners: dict[str, list[str]] = {}
    offset = 0
    while True:
        batch = index.chunks.get(include=["metadatas"], limit=GET_BATCH, offset=offset)
        if not batch["ids"]:
            return owners
        for chunk_id, meta in zip(batch["ids"], batch["metadatas"]):
            owners.setdefault(chunk_paper_id(meta or {}), []).append(chunk_id)
        offset += len(batch["ids"])


def _uploads_in_use(index: PaperIndex) -> set[str]:
    return {paper.source for paper in index.iter_papers() if paper.source}


def check(index: PaperIndex) -> list[Problem]:
    """Every problem found, one per paper/path (empty: healthy)."""
    problems: list[Problem] = []
    paper_ids = index.all_ids()
    known = set(paper_ids)
    owners = _chunk_owners(index)
    for start in range(0, len(paper_ids), GET_BATCH):
        for paper_id in _unreachable(index.papers, paper_ids[start : start + GET_BATCH]):
            problems.append(Problem("no-vector", paper_id, "paper vector missing from the graph"))
    flagged = {problem.subject for problem in problems}
    chunk_ids = [chunk for owner in known & set(owners) for chunk in owners[owner]]
    lost_chunks: set[str] = set()
    for start in range(0, len(chunk_ids), GET_BATCH):
        lost_chunks.update(_unreachable(index.chunks, chunk_ids[start : start + GET_BATCH]))
    for paper_id in paper_ids:
        if paper_id not in owners:
            problems.append(Problem("no-chunks", paper_id, "paper has no chunks"))
        elif paper_id not in flagged and lost_chunks & set(owners[paper_id]):
            problems.append(Problem("no-vector", paper_id, "chunk vectors missing from the graph"))
    for owner in sorted(set(owners) - known):
        problems.append(
            Problem("orphan-chunks", owner or "?", f"{len(owners[owner])} chunk(s) without a paper")
        )
    if index.settings.chroma_host:
        # Server mode: this directory's BM25 index is one machine's copy of the shared store,
        # behind whenever other machines write, caught up by its next query: catch up now,
        # so only drift that survives a sync is reported.
        index.lexical.sync_with(index)
    lexical = set(index.lexical.ids)
    if lexical != known:
        problems.append(Problem(
            "lexical-drift", str(index.lexical.directory),
            f"BM25 lacks {len(known - lexical)} and has {len(lexical - known)} extra paper(s)",
        ))  # fmt: skip
    for path in index.lexical.leftovers():
        problems.append(Problem("leftover", str(path), "left by an interrupted BM25 rebuild"))
    uploads = index.settings.index / "uploads"
    if uploads.is_dir():
        in_use = _uploads_in_use(index)
        for path in sorted(uploads.iterdir()):
            if path.is_file() and str(path) not in in_use:
                problems.append(Problem("leftover", str(path), "upload no paper comes from"))
    return problems


def _reread(paper: Paper) -> tuple[Paper, str]:
    """The paper with its full text re-read from a PDF source when possible, plus a note."""
    source = Path(paper.source) if paper.source else None
    if source is None or source.suffix.lower() != ".pdf":
        return paper, ""
    if not source.is_file():
        return paper, f"{paper.id}: source {source} is gone; re-indexed from its abstract only"
    try:
        for candidate in parse_file(source).papers:
            if candidate.id == paper.id:
                return candidate, ""
    except (FormatError, OSError) as exc:
        return paper, f"{paper.id}: source {source} unreadable ({exc}); abstract only"
    return paper, f"{paper.id}: source {source} no longer holds this paper; abstract only"


def repair(index: PaperIndex, problems: Sequence[Problem]) -> list[str]:
    """Fix the problems check() found; one line per action (notes included)."""
    done: list[str] = []
    with index.writing():
        broken = sorted({p.subject for p in problems if p.kind in ("no-vector", "no-chunks")})
        if broken:
            stored = index.get_papers(broken)
            papers = []
            for paper_id in broken:
                paper, note = _reread(stored[paper_id])
                papers.append(paper)
                if note:
                    done.append(f"note: {note}")
            index.papers.delete(ids=broken)
            index.chunks.delete(where={"document_id": {"$in": broken}})
            added = index.add_papers(papers).added
            done.append(f"re-embedded {added} paper(s): {', '.join(broken[:10])}"
                        + (" …" if len(broken) > 10 else ""))  # fmt: skip
        orphans = [p.subject for p in problems if p.kind == "orphan-chunks"]
        if orphans:
            index.chunks.delete(where={"document_id": {"$in": orphans}})
            done.append(f"deleted the orphan chunks of {len(orphans)} missing paper(s)")
        if any(p.kind == "lexical-drift" for p in problems) or broken:
            index.lexical.mark_synced("")  # forces the id diff
            index.lexical.sync_with(index)
            done.append("re-synced the BM25 index with Chroma")
        for problem in problems:
            if problem.kind == "leftover":
                path = Path(problem.subject)
                if path.parent == index.lexical.directory:
                    index.lexical.drop_leftovers()
                elif path.is_file():
                    path.unlink()
                done.append(f"removed {path}")
    return done
