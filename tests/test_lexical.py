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
from rag.papers import Paper, Passage
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


LONG = Paper(
    "pdf1", "Reef mapping from glider sonar", "Gliders record sonar echoes over coral reefs.",
    passages=(
        Passage("Echo windows are normalised by their median energy.", "body", 2, "2 Method"),
        Passage("The model was trained on the Kettlewell lagoon recordings.", "body", 3,
                "3 Experiments"),
    ),
)  # fmt: skip


def test_body_passages_are_searched_and_located(empty_index):
    empty_index.add_papers([*PAPERS, LONG])
    hits = empty_index.lexical.search_passages("Kettlewell lagoon", 5)
    assert [hit.paper_id for hit in hits] == ["pdf1"]  # a body-only match keeps its paper
    passage, score = hits[0].passages[0]
    assert (passage.location, score > 0) == ("§ 3 Experiments, p. 3", True)
    assert empty_index.lexical.knows(tokenize(["Kettlewell"])[0][0])
    assert lexical_ids(empty_index, "zebrafish") == ["a1"]  # head rows rank as before
    assert empty_index.lexical.search_passages("coral reefs", 5)[0].passages == []


def test_an_old_layout_lexical_index_is_rebuilt_with_body_passages(settings):
    index = PaperIndex(settings)
    index.add_papers([*PAPERS, LONG])
    directory = index.lexical.directory
    generation = directory / (directory / "CURRENT").read_text().strip()
    # Rewrite the generation as the previous layout wrote it: one row per paper, no FORMAT.
    rows = [json.loads(line) for line in (generation / "tokens.jsonl").read_text().splitlines()]
    (generation / "tokens.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in row.items() if k != "passages"}) + "\n" for row in rows)
    )
    for name in ("FORMAT", "rows.npy", "passages.json"):
        (generation / name).unlink()
    reader = PaperIndex(settings)
    assert reader.lexical.count() == 0  # an unknown layout reads as empty ...
    reader.settings.retrieval_mode = "lexical"
    sources = retrieve(reader, "Kettlewell lagoon", 3)  # ... and is rebuilt from Chroma
    assert [source.paper.id for source in sources] == ["pdf1"]
    assert sources[0].passages[0].location == "§ 3 Experiments, p. 3"
    assert sorted(reader.lexical.ids) == ["a1", "a2", "a3", "pdf1"]
    assert not generation.exists()
    current = directory / (directory / "CURRENT").read_text().strip()
    assert (current / "FORMAT").read_text() == "2"
