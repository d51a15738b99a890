"""`rag check` / `rag repair` on real faults, each made the way it happens in the field."""

from __future__ import annotations

import json
import shutil

from rag.cli import main
from rag.health import check
from rag.index import PaperIndex
from rag.papers import Paper
from tests.conftest import make_settings
from tests.test_formats import make_pdf
from tests.test_index import persist_often

PAPERS = [
    Paper(f"h{i}", f"Health paper {i} on {topic}", f"We study {topic} in depth, case {i}.",
          year=2020)  # fmt: skip
    for i, topic in enumerate(
        ["glaciers", "volcanoes", "coral reefs", "deserts", "tides", "monsoons", "aquifers"]
    )
]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def unlocked_write(index: PaperIndex, papers: list[Paper]) -> None:
    """What every writer did before the lock: write from whatever view it holds."""
    index._write(papers, index._chunk_and_embed(papers))


def lose_vectors(settings) -> None:
    """Two views of one local index, each with its own in-memory graph (as two processes):
    the stale one writes last, its graph files replace the other's, and the write log
    that could have replayed them is already purged: h3's and h5's vectors are gone.
    (Two records per write reach the collections' sync threshold of 2.)"""
    stale = PaperIndex(settings)
    stale.papers.count(), stale.chunks.count()  # load both graphs now
    unlocked_write(PaperIndex(settings), [PAPERS[3], PAPERS[5]])
    unlocked_write(stale, [PAPERS[4], PAPERS[6]])


def test_check_finds_and_repair_fixes_every_fault(tmp_path, capsys):
    settings = make_settings(tmp_path)
    persist_often(settings, sync_threshold=2)
    index = PaperIndex(settings)
    index.add_papers(PAPERS[:3])
    pdf = make_pdf(tmp_path / "long.pdf", "A Long Document About Rivers", "Rivers carve valleys.",
                   "Sediment moves downstream over centuries. " * 60)  # fmt: skip
    from rag.ingest import ingest_paths

    ingest_paths(index, [pdf])
    lose_vectors(settings)
    index = PaperIndex(settings)
    index.lexical.add(PAPERS[3:])  # BM25 in step with what the writers added
    # A paper record whose chunks are gone, orphan chunks of a paper never recorded,
    # BM25 drift, a killed BM25 rebuild, an upload nothing came from.
    pdf_id = next(p.id for p in index.iter_papers() if p.source == str(pdf))
    index.chunks.delete(where={"document_id": pdf_id})
    orphan = Paper("ghost", "Ghost", "A paper whose record was never written.")
    index.add_chunks(index._chunk_and_embed([orphan]))
    index.lexical.remove(["h1"])
    (index.lexical.directory / "gen-1").mkdir()
    (settings.index / "uploads").mkdir()
    (settings.index / "uploads" / "refused.jsonl").write_text("{}\n")

    code, out, _ = run(capsys, "check", "--index", str(settings.index))
    assert code == 1
    lines = out.splitlines()
    assert "no-vector: h3: paper vector missing from the graph" in lines
    assert "no-vector: h5: paper vector missing from the graph" in lines
    assert f"no-chunks: {pdf_id}: paper has no chunks" in lines
    assert "orphan-chunks: ghost: 1 chunk(s) without a paper" in lines
    assert any(line.startswith("lexical-drift: ") and "lacks 1" in line for line in lines)
    assert any(line.startswith("leftover: ") and line.endswith("gen-1: left by an interrupted BM25 rebuild") for line in lines)
    assert any("refused.jsonl: upload no paper comes from" in line for line in lines)
    assert lines[-1] == f"{settings.index}: 7 problem(s)"
    code, out, _ = run(capsys, "check", "--json", "--index", str(settings.index))
    report = json.loads(out)
    assert code == 1 and report["healthy"] is False
    assert {p["kind"] for p in report["problems"]} == {
        "no-vector", "no-chunks", "orphan-chunks", "lexical-drift", "leftover"
    }  # fmt: skip

    code, out, err = run(capsys, "repair", "--index", str(settings.index))
    assert (code, err) == (0, ""), out
    assert out.splitlines()[-1] == f"{settings.index}: repaired"
    assert check(PaperIndex(settings)) == []
    healed = PaperIndex(settings)
    assert len(healed.chunks.get(where={"document_id": pdf_id})["ids"]) > 1  # body re-read
    from rag.retrieve import retrieve

    healed.settings.retrieval_mode = "dense"
    for lost in (PAPERS[3], PAPERS[5]):
        assert retrieve(healed, f"{lost.title}\n\n{lost.abstract}", 1)[0].paper.id == lost.id
    assert run(capsys, "check", "--index", str(settings.index))[0] == 0


def test_repair_reindexes_a_pdf_whose_source_is_gone_from_its_abstract(tmp_path, capsys):
    settings = make_settings(tmp_path)
    pdf = make_pdf(tmp_path / "gone.pdf", "A Vanishing Document", "Abstracts survive.",
                   "Bodies do not. " * 40)  # fmt: skip
    from rag.ingest import ingest_paths

    index = PaperIndex(settings)
    ingest_paths(index, [pdf])
    paper_id = index.all_ids()[0]
    index.chunks.delete(where={"document_id": paper_id})
    shutil.move(pdf, tmp_path / "elsewhere.pdf")
    code, out, _ = run(capsys, "repair", "--index", str(settings.index))
    assert code == 0
    assert f"note: {paper_id}: source {pdf} is gone; re-indexed from its abstract only" in out
    assert len(PaperIndex(settings).chunks.get(where={"document_id": paper_id})["ids"]) == 1


def test_a_damaged_index_gives_one_error_line_not_a_traceback(tmp_path, capsys):
    settings = make_settings(tmp_path)
    persist_often(settings, sync_threshold=2)
    PaperIndex(settings).add_papers(PAPERS[:3])
    lose_vectors(settings)  # h3 is stored but missing from the graph
    index = str(settings.index)
    assert run(capsys, "check", "--index", index)[1].startswith("no-vector: h3")  # (and h5)
    code, out, err = run(capsys, "retrieve", "glaciers and tides", "--year", "2020", "--index", index)
    assert (code, out) == (1, "")
    assert err.startswith("error: Chroma: ") and err.endswith("(run `rag check`)\n")
    assert err.count("\n") == 1
