"""The BM25 side index: persisted beside Chroma, consistent through re-ingest, delete, server mode."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import chromadb
import pytest

from conftest import make_settings
from rag.index import PaperIndex
from rag.lexical import LexicalIndex, tokenize
from rag.papers import Paper
from rag.retrieve import retrieve

PAPERS = [
    Paper("a1", "Zebrafish fin regeneration", "Fin regrowth in zebrafish depends on blastema cells."),
    Paper("a2", "Quokka population surveys", "Camera counts of quokkas on Rottnest island."),
    Paper("a3", "Sparse attention for long documents", "Sliding windows make attention linear."),
]
NEW = Paper("a4", "Narwhal tusk sensing", "The narwhal tusk carries sensory nerve endings.")


def lexical_ids(index: PaperIndex, query: str) -> list[str]:
    return [paper_id for paper_id, _ in index.lexical.search(query, 10)]


def test_tokenizer_stems_and_drops_stopwords():
    assert tokenize(["The regenerating fins of zebrafish"]) == [["regener", "fin", "zebrafish"]]


def test_reingest_adds_no_duplicates(empty_index):
    empty_index.add_papers(PAPERS)
    again = empty_index.add_papers([*PAPERS, NEW, NEW])
    assert (again.added, again.duplicates) == (1, 4)
    lexical = empty_index.lexical
    assert sorted(lexical.ids) == ["a1", "a2", "a3", "a4"] == sorted(empty_index.all_ids())
    generations = [p for p in lexical.directory.iterdir() if p.name.startswith("gen-")]
    assert len(generations) == 1  # old generations are removed after the swap
    lines = (generations[0] / "tokens.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == ["a1", "a2", "a3", "a4"]
    assert lexical_ids(empty_index, "narwhal") == ["a4"]


def test_delete_removes_the_paper_from_bm25(empty_index):
    empty_index.add_papers(PAPERS)
    assert lexical_ids(empty_index, "quokka") == ["a2"]
    assert empty_index.delete_paper("a2")
    assert lexical_ids(empty_index, "quokka") == []
    assert sorted(empty_index.lexical.ids) == ["a1", "a3"]
    assert not empty_index.delete_paper("a2")


def test_persisted_index_is_reused_by_a_new_process_view(settings):
    PaperIndex(settings).add_papers(PAPERS)
    reopened = PaperIndex(settings)
    assert reopened.lexical.count() == 3
    assert reopened.lexical.sync_with(reopened) is False  # in step: nothing rebuilt


def test_a_reader_sees_writes_made_through_another_instance(settings):
    writer = PaperIndex(settings)
    writer.add_papers(PAPERS)
    reader = LexicalIndex(writer.lexical.directory)
    assert reader.count() == 3
    writer.add_papers([NEW])
    assert [paper_id for paper_id, _ in reader.search("narwhal", 5)] == ["a4"]


def test_lost_or_stale_lexical_index_is_rebuilt_from_chroma(settings):
    index = PaperIndex(settings)
    index.add_papers(PAPERS)
    shutil.rmtree(index.lexical.directory)
    sources = retrieve(index, "zebrafish fin", 1)
    assert [s.paper.id for s in sources] == ["a1"]
    assert index.lexical.count() == 3
    # A paper written to Chroma behind the lexical index's back (e.g. a crash mid-ingest).
    index.papers.delete(ids=["a3"])
    assert index.lexical.sync_with(index) is True
    assert sorted(index.lexical.ids) == ["a1", "a2"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` server on 127.0.0.1 (the CLI ships with chromadb)."""
    port = _free_port()
    chroma = Path(sys.executable).with_name("chroma")
    process = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("chroma server did not start")
                time.sleep(0.5)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_two_clients_of_one_chroma_server_stay_consistent(tmp_path, chroma_server):
    """Each client keeps its own lexical files; both follow what the server holds."""
    first = PaperIndex(make_settings(tmp_path / "one", chroma_host="127.0.0.1",
                                     chroma_port=chroma_server))  # fmt: skip
    second = PaperIndex(make_settings(tmp_path / "two", chroma_host="127.0.0.1",
                                      chroma_port=chroma_server))  # fmt: skip
    first.add_papers(PAPERS)
    second.settings.retrieval_mode = "lexical"
    assert [s.paper.id for s in retrieve(second, "quokka surveys", 3)] == ["a2"]
    first.delete_paper("a2")
    first.add_papers([NEW])
    assert [s.paper.id for s in retrieve(second, "quokka narwhal", 3)] == ["a4"]
    assert sorted(second.lexical.ids) == ["a1", "a3", "a4"]


def test_knows_only_terms_some_paper_contains(empty_index):
    assert empty_index.lexical.knows("anything")  # an empty index proves no absence
    empty_index.add_papers([Paper(id="a", title="Sparse attention", abstract="Tokens attend.")])
    assert empty_index.lexical.knows(tokenize(["attention"])[0][0])
    assert not empty_index.lexical.knows(tokenize(["retinopathy"])[0][0])


def test_a_killed_rebuild_leaves_nothing_behind_after_the_next_write(empty_index):
    empty_index.add_papers(PAPERS[:2])
    lexical = empty_index.lexical
    killed = lexical.directory / "gen-1"  # as a rebuild killed mid-write leaves it
    (killed / "bm25").mkdir(parents=True)
    (killed / "tokens.jsonl").write_text("{}\n")
    assert lexical.leftovers() == [killed]
    empty_index.add_papers([NEW])
    assert lexical.leftovers() == [] and not killed.exists()
    assert lexical_ids(empty_index, "narwhal") == ["a4"]
