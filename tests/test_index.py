"""The index against a real `chroma run` server, and its safety checks."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from rag.index import IndexBusyError, IndexMismatchError, PaperIndex
from rag.ingest import ingest_paths
from rag.papers import Paper, Passage
from rag.retrieve import Allowed, _chunk_search, retrieve
from tests.conftest import make_settings

PAPERS = [
    {"id": "s1", "title": "Protein folding with graph networks",
     "abstract": "We predict protein structures using message passing over residue graphs."},
    {"id": "s2", "title": "Speech recognition for low-resource languages",
     "abstract": "We transcribe speech in languages with little labelled audio via transfer learning."},
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A real Chroma server process on a loopback port, for the index's server mode."""
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    process = subprocess.Popen(
        [chroma, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("chroma run did not come up")
    yield port
    process.terminate()
    process.wait(timeout=30)


def test_server_mode_ingest_retrieve_delete(chroma_server, tmp_path):
    settings = make_settings(tmp_path, chroma_host="127.0.0.1", chroma_port=chroma_server)
    papers_file = tmp_path / "p.jsonl"
    papers_file.write_text("\n".join(json.dumps(paper) for paper in PAPERS))
    index = PaperIndex(settings)
    assert index.location == f"chroma://127.0.0.1:{chroma_server}"
    assert ingest_paths(index, [papers_file]).added == 2
    assert ingest_paths(PaperIndex(settings), [papers_file]).added == 0  # a second client
    top = retrieve(index, "how are protein structures predicted", k=1)
    assert [source.paper.id for source in top] == ["s1"]
    assert index.delete_paper("s2") and index.paper_count() == 1
    assert not (tmp_path / "index" / "chroma").exists()  # vectors live on the server


def test_other_embedder_on_existing_index_is_refused(seed_settings, seed_index, tmp_path):
    fake_model = tmp_path / "other-model"
    fake_model.mkdir()
    other = seed_settings.model_copy(update={"embed_model": str(fake_model)})
    with pytest.raises(IndexMismatchError, match="built with embedder"):
        PaperIndex(other)


def test_interrupted_ingest_orphans_are_replaced(empty_index, tmp_path):
    """Chunks written without their paper record (a crash) are replaced, not duplicated."""
    from rag.papers import Paper

    paper = Paper(id="o1", title="Orphan paper", abstract="Text about orphans and recovery.")
    nodes = empty_index._chunk_and_embed([paper])
    empty_index.add_chunks(nodes)  # chunks only: as if killed before the paper record
    assert empty_index.add_papers([paper]).added == 1
    assert len(empty_index.chunks.get(where={"document_id": "o1"})["ids"]) == len(nodes)


# --- one safe writer, fresh readers (issue 12 items 2 and 3) ---------------------------------

WORDS = (
    "protein graph speech audio vision retrieval ranking language transformer attention robot "
    "policy reward fluid galaxy quantum circuit molecule drug gene climate traffic"
).split()


def write_corpus(path: Path, prefix: str, count: int) -> list[dict]:
    """Papers with a unique marker word each (lexical) and distinct text (dense)."""
    rows = []
    for number in range(count):
        topic = " ".join(WORDS[(number * 7 + offset) % len(WORDS)] for offset in range(4))
        rows.append({
            "id": f"{prefix}{number}", "title": f"{prefix} study {number}: {topic}",
            "abstract": f"We examine {topic} with the marker {prefix}mark{number}z in setting "
                        f"{number} of {count}.", "year": 2000 + number % 10,
        })  # fmt: skip
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return rows


def persist_often(settings, sync_threshold: int = 20) -> None:
    """Create the collections so Chroma writes its HNSW graph to disk (and purges its write
    log) every `sync_threshold` records instead of every 1,000: small test corpora then
    exercise the same overwrite-and-purge path that loses whole batches at full size."""
    import chromadb

    from rag.embedder import embedder_label

    client = chromadb.PersistentClient(path=str(settings.index / "chroma"))
    for suffix in ("chunks", "papers"):
        client.get_or_create_collection(
            f"{settings.collection}_{suffix}", embedding_function=None,
            metadata={"hnsw:space": "cosine", "embedder": embedder_label(settings),
                      "hnsw:sync_threshold": sync_threshold},
        )  # fmt: skip


def run_cli(*args: str, **env: str) -> subprocess.Popen:
    import os

    from rag.settings import PROJECT_ROOT

    return subprocess.Popen(
        [sys.executable, "-m", "rag.cli", *args], cwd=PROJECT_ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip


def assert_every_paper_searchable(index: PaperIndex, rows: list[dict]) -> None:
    """Dense (own text ranks itself first), lexical (marker word) and a filtered query."""
    from rag.filters import RetrievalFilters
    from rag.retrieve import retrieve_batch

    queries = [(row["id"], f"{row['title']}\n\n{row['abstract']}") for row in rows]
    index.settings.retrieval_mode = "dense"
    try:
        ranked = retrieve_batch(index, queries, 1)
    finally:
        index.settings.retrieval_mode = "hybrid"
    assert [qid for qid, sources in ranked.items() if [s.paper.id for s in sources] != [qid]] == []
    ids = [row["id"] for row in rows]
    assert sorted(index.all_ids()) == sorted(ids)
    index.papers.get(ids=ids, include=["embeddings"])  # raises when a vector is missing
    for row in rows:
        marker = row["abstract"].split("marker ")[1].split()[0]
        assert [pid for pid, _ in index.lexical.search(marker, 1)] == [row["id"]]
    only_2003 = RetrievalFilters(year_min=2003, year_max=2003)
    found = retrieve(index, "a study of graphs and proteins", 50, only_2003)
    assert found and {source.paper.year for source in found} == {2003}


def test_a_paper_record_keeps_its_abstract_out_of_chromas_full_text_index(empty_index):
    """The abstract lives in the papers record's metadata (a Chroma document would be
    trigram-indexed on every write); records written before, with the abstract as the
    document, read and enrich the same."""
    new, old = (Paper(f"p{n}", f"Layout {n}", f"Abstract number {n}.") for n in (1, 2))
    empty_index.add_papers([new, old])
    stored = empty_index.papers.get(ids=["p1", "p2"], include=["documents", "embeddings"])
    assert stored["documents"] == [None, None]
    empty_index.papers.delete(ids=["p2"])  # p2 as an earlier release wrote it
    empty_index.papers.add(ids=["p2"], embeddings=[stored["embeddings"][1]],
                           documents=[old.abstract], metadatas=[old.metadata()])  # fmt: skip
    assert empty_index.get_papers(["p1", "p2"]) == {"p1": new, "p2": old}
    assert sorted(empty_index.iter_papers(), key=lambda paper: paper.id) == [new, old]
    authored = Paper("p2", old.title, "", authors="Ada Lovelace")
    assert empty_index.enrich_papers([authored]) == ["p2"]
    assert empty_index.get_papers(["p2"])["p2"] == Paper("p2", old.title, old.abstract,
                                                         authors="Ada Lovelace")  # fmt: skip


def test_a_chunk_record_is_its_paper_location_and_text_and_older_chunks_still_read(empty_index):
    """Chunks hold their text and location as metadata, no Chroma document (which local
    Chroma would trigram-index) and no copy of the paper's metadata; chunks an earlier
    release wrote (text as document, paper fields beside) still search and read back."""
    body = (Passage("The sorter ran 417 epochs on tape drives.", "body", 3, "Methods"),
            Passage("Merging costs grew with the square of the runs.", "body", 4, "Results"))
    paper = Paper("pdf1", "External sorting", "We sort on tape.", year=1999, passages=body)
    empty_index.add_papers([paper, Paper("p2", "Gardens", "Roses in the shade.")])
    stored = empty_index.chunks.get(where={"document_id": "pdf1"},
                                    include=["documents", "metadatas", "embeddings"])  # fmt: skip
    assert set(stored["documents"]) == {None}
    assert {tuple(sorted(meta)) for meta in stored["metadatas"]} == {
        ("document_id", "kind", "page", "section", "text")
    }
    assert empty_index.body_passages(["pdf1"]) == {"pdf1": body}
    old = stored["metadatas"].index(next(m for m in stored["metadatas"] if m["page"] == 3))
    empty_index.chunks.update(  # the chunk as llama-index's vector store wrote it
        ids=[stored["ids"][old]], embeddings=[stored["embeddings"][old]], documents=[body[0].text],
        metadatas=[{**paper.metadata(), "document_id": "pdf1", "kind": "body", "page": 3,
                    "section": "Methods", "text": None}],
    )  # fmt: skip
    assert empty_index.body_passages(["pdf1"]) == {"pdf1": body}
    query = empty_index.embedder.get_query_embedding("How many epochs did the sorter run?")
    hits = _chunk_search(empty_index, query, 2, Allowed(np.ones(2), frozenset({"pdf1"})),
                         body_only=True)  # fmt: skip
    assert [hit.paper_id for hit in hits] == ["pdf1"]
    assert {passage for passage, _ in hits[0].passages} == set(body)


def test_two_ingest_processes_at_once_keep_every_paper_searchable(tmp_path):
    settings = make_settings(tmp_path)
    persist_often(settings)
    first = write_corpus(tmp_path / "first.jsonl", "aa", 48)
    second = write_corpus(tmp_path / "second.jsonl", "bb", 48)
    runs = [
        run_cli("ingest", str(tmp_path / name), "--index", str(settings.index),
                RAG_INGEST_BATCH_PAPERS="8")
        for name in ("first.jsonl", "second.jsonl")
    ]  # fmt: skip
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all(err.count("waiting…") <= 1 for _, err in outputs)
    assert_every_paper_searchable(PaperIndex(settings), first + second)


def test_a_long_lived_reader_sees_papers_another_process_added(tmp_path):
    settings = make_settings(tmp_path)
    persist_often(settings)
    before = write_corpus(tmp_path / "before.jsonl", "cc", 24)
    ingest_paths(PaperIndex(settings), [tmp_path / "before.jsonl"])
    reader = PaperIndex(settings)
    assert retrieve(reader, "a study of galaxies", 3)  # graphs loaded: the view is warm
    after = write_corpus(tmp_path / "after.jsonl", "dd", 24)
    run = run_cli("ingest", str(tmp_path / "after.jsonl"), "--index", str(settings.index))
    assert run.communicate(timeout=600) and run.returncode == 0
    assert_every_paper_searchable(reader, before + after)


def test_a_write_waits_for_the_lock_then_gives_up_with_a_clear_error(settings):
    import fcntl

    index = PaperIndex(settings.model_copy(update={"write_lock_timeout_s": 0.5}))
    heard: list[str] = []
    index.on_wait = heard.append
    with open(index.lock_path, "a") as other:  # another open file: as another process
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(IndexBusyError, match="write_lock_timeout_s"):
            index.add_papers([Paper(id="w1", title="Waiting", abstract="A paper that waits.")])
        fcntl.flock(other, fcntl.LOCK_UN)
    assert heard == [f"another process is writing to {index.location}; waiting… "
                     "(up to 0.5 s, setting write_lock_timeout_s)"]  # fmt: skip
    assert index.paper_count() == 0
    assert index.add_papers([Paper(id="w1", title="Waiting", abstract="It waits.")]).added == 1
