"""The BM25 side index: persisted beside Chroma, consistent through re-ingest, delete, server mode."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import bm25s
import chromadb
import numpy as np
import pytest

from conftest import make_settings
from rag.formats import expand_paths, parse_file
from rag.index import PaperIndex
from rag.lexical import (
    FORMAT,
    LexicalIndex,
    _merged,
    _Segment,
    _segment_from_papers,
    merge_start,
    tokenize,
)
from rag.papers import Paper, Passage
from rag.retrieve import retrieve
from rag.settings import BUNDLED_CORPUS

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
    manifest = json.loads((lexical.directory / lexical._current()).read_text())
    named = {entry["name"] for entry in manifest["segments"]}
    on_disk = {p.name for p in lexical.directory.iterdir() if p.name.startswith("seg-")}
    assert on_disk == named  # segments merged away are removed after the swap
    stored = [row["id"] for name in named for row in json.loads(
        (lexical.directory / name / "papers.json").read_text())]  # fmt: skip
    assert sorted(stored) == ["a1", "a2", "a3", "a4"]
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
    killed = lexical.directory / "seg-1"  # as a write killed mid-segment leaves it
    killed.mkdir(parents=True)
    (killed / "terms.json").write_text("[]")
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
    # CURRENT names a generation as the previous layout (FORMAT 2, one bm25s matrix) wrote it.
    generation = directory / "gen-1"
    (generation / "bm25").mkdir(parents=True)
    (generation / "FORMAT").write_text("2")
    (generation / "tokens.jsonl").write_text("{}\n")
    (directory / "CURRENT").write_text("gen-1")
    reader = PaperIndex(settings)
    assert reader.lexical.count() == 0  # an unknown layout reads as empty ...
    reader.settings.retrieval_mode = "lexical"
    sources = retrieve(reader, "Kettlewell lagoon", 3)  # ... and is rebuilt from Chroma
    assert [source.paper.id for source in sources] == ["pdf1"]
    assert sources[0].passages[0].location == "§ 3 Experiments, p. 3"
    assert sorted(reader.lexical.ids) == ["a1", "a2", "a3", "pdf1"]
    assert not generation.exists() and reader.lexical.leftovers() == []
    manifest = json.loads((directory / (directory / "CURRENT").read_text()).read_text())
    assert manifest["format"] == FORMAT == "3"


# --- incremental segments: ranking equal to a full rebuild -------------------------------
def corpus_papers() -> list[Paper]:
    """The bundled corpus (a few hundred real abstracts), with body passages on some."""
    files, _ = expand_paths([BUNDLED_CORPUS])
    unique = {paper.id: paper for path in files for paper in parse_file(path).papers}
    papers = list(unique.values())
    return [
        replace(paper, passages=(Passage(paper.abstract[::-1], "body", 2, "2 Method"),))
        if number % 7 == 0 else paper
        for number, paper in enumerate(papers)
    ]  # fmt: skip


QUERIES = ["graph neural networks", "sparse attention for long documents",
           "reinforcement learning reward", "language model evaluation benchmark"]  # fmt: skip


def by_id(lexical: LexicalIndex, query: str) -> dict[str, float]:
    return dict(zip(lexical.ids, lexical.scores(query).tolist()))


def test_segments_and_tombstones_score_exactly_like_a_full_rebuild(tmp_path):
    papers = corpus_papers()
    base, later = papers[:-40], papers[-40:]
    changed = replace(base[3], abstract="Sparse attention reward graphs, rewritten.")
    gone = [paper.id for paper in base[10:30]] + [later[0].id]
    incremental = LexicalIndex(tmp_path / "incremental")
    incremental.add(base)
    for start in range(0, len(later), 8):  # small writes after a big one: separate segments
        incremental.add(later[start : start + 8])
    incremental.add([changed])
    incremental.remove(gone)
    manifest = json.loads((incremental.directory / incremental._current()).read_text())
    assert len(manifest["segments"]) > 1 and any(s["deleted"] for s in manifest["segments"])

    final = [changed if p.id == changed.id else p for p in papers if p.id not in gone]
    rebuilt = LexicalIndex(tmp_path / "rebuilt")
    rebuilt.add(final)
    assert sorted(incremental.ids) == sorted(rebuilt.ids) == sorted(p.id for p in final)
    rows = [f"{p.title}\n{p.abstract}" for p in final] + [
        passage.text for p in final for passage in p.passages
    ]
    owner = [p.id for p in final] + [p.id for p in final for _ in p.passages]
    reference = bm25s.BM25()  # bm25s's Lucene BM25, which this index used before
    reference.index(tokenize(rows), show_progress=False)
    for query in QUERIES:
        mine, full = by_id(incremental, query), by_id(rebuilt, query)
        assert max(full.values()) > 0
        assert mine == pytest.approx(full, rel=1e-5, abs=1e-6)
        known = [t for t in tokenize([query])[0] if t in reference.vocab_dict]
        best: dict[str, float] = {}
        for paper_id, score in zip(owner, reference.get_scores(known).tolist()):
            best[paper_id] = max(best.get(paper_id, 0.0), score)
        assert mine == pytest.approx(best, rel=1e-5, abs=1e-6)
        ranked = [hit.paper_id for hit in incremental.search_passages(query, 10)]
        assert ranked == [hit.paper_id for hit in rebuilt.search_passages(query, 10)]


def test_a_small_write_leaves_the_big_segment_alone(tmp_path):
    papers = corpus_papers()
    lexical = LexicalIndex(tmp_path / "lexical")
    lexical.add(papers)
    base = lexical._current()
    (big,) = json.loads((lexical.directory / base).read_text())["segments"]
    lexical.add([LONG])
    segments = json.loads((lexical.directory / lexical._current()).read_text())["segments"]
    assert [s["name"] for s in segments][0] == big["name"] and len(segments) == 2
    assert lexical.search_passages("Kettlewell lagoon", 3)[0].passages[0][0].page == 3
    lexical.remove([LONG.id])  # a tombstone-only write: no segment is written
    assert lexical.search("Kettlewell lagoon", 3) == []
    assert not lexical.knows(tokenize(["Kettlewell"])[0][0])
    assert {p.name for p in lexical.directory.iterdir() if p.name.startswith("seg-")} == {
        big["name"]
    }  # the emptied segment is gone, the big one untouched
    assert lexical.count() == len(papers) and lexical.leftovers() == []


@pytest.mark.parametrize(
    ("live", "dead", "start"),
    [
        ([], [], 0),
        ([1000], [0], 1),  # one clean segment: nothing to merge
        ([1000], [600], 1),  # fewer tombstones than live rows: keep them
        ([1000], [1200], 0),  # more tombstones than live rows: rewrite it
        ([1000, 10], [0, 0], 2),  # a small delta after a big segment stays a delta
        ([2000, 200, 60], [0, 0, 0], 1),  # 200 <= 4 * 60: the tail merges, the base stays
        ([2000, 200, 60], [0, 0, 70], 1),
        ([300, 200, 60], [0, 0, 0], 0),  # the base is at most 4x the rest: all merge
        ([1000, 10, 10], [4000, 0, 0], 0),  # a mostly deleted base is reclaimed
    ],
)
def test_merge_plan_is_size_tiered(live, dead, start):
    assert merge_start(live, dead) == start


def test_a_merge_writes_the_same_postings_as_building_the_segment_at_once(tmp_path):
    papers = corpus_papers()
    thirds = [papers[: len(papers) // 3], papers[len(papers) // 3 : -9], papers[-9:]]
    segments = []
    for number, part in enumerate(thirds):
        _Segment.write(tmp_path / f"seg-{number}", _segment_from_papers(part))
        segments.append(_Segment(tmp_path / f"seg-{number}"))
    merged = _merged(segments, [np.zeros(len(part), dtype=bool) for part in thirds])
    direct = _segment_from_papers(papers)
    assert merged.postings.terms == direct.postings.terms
    for field in ("indptr", "rows", "tfs"):  # CSC: per term, rows ascending
        mine, reference = getattr(merged.postings, field), getattr(direct.postings, field)
        assert mine.dtype == reference.dtype and np.array_equal(mine, reference), field
    assert np.array_equal(merged.lengths, direct.lengths) and merged.meta == direct.meta
