"""Ingest into a real persistent Chroma index: counts, idempotence, bad input keeps data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import rag.index
from rag.embedder import EmbeddingProcess
from rag.formats import count_records, stream_file
from rag.index import PaperIndex
from rag.ingest import ingest_paths, progress_line
from rag.settings import BUNDLED_CORPUS

ABSTRACT = "A study of {topic}: we propose a method and evaluate it on three benchmarks in depth."


def jsonl(path: Path, *titles: str) -> Path:
    rows = [{"id": f"x{i}", "title": t, "abstract": ABSTRACT.format(topic=t)} for i, t in enumerate(titles)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_bundled_corpus_then_reingest_adds_nothing(seed_index):
    assert seed_index.paper_count() == 273
    chunks = seed_index.chunk_count()
    assert chunks >= 273
    again = ingest_paths(seed_index, [BUNDLED_CORPUS])
    assert (again.added, again.duplicates, again.total_papers) == (0, 327, 273)
    assert seed_index.chunk_count() == chunks


def test_reopened_index_keeps_papers(settings, tmp_path):
    ingest_paths(PaperIndex(settings), [jsonl(tmp_path / "a.jsonl", "Alpha", "Beta")])
    reopened = PaperIndex(settings)
    assert reopened.paper_count() == 2
    assert set(reopened.get_papers(["x0", "x1"])) == {"x0", "x1"}
    assert reopened.get_papers(["x0"])["x0"].title == "Alpha"


def test_bad_files_do_not_stop_good_ones_or_lose_data(empty_index, tmp_path):
    ingest_paths(empty_index, [jsonl(tmp_path / "first.jsonl", "Alpha")])
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    report = ingest_paths(empty_index, [binary, empty, jsonl(tmp_path / "second.jsonl", "Gamma")])
    assert not report.ok
    assert len(report.file_errors) == 2
    assert all("\n" not in line for line in report.problems())
    assert report.added == 0 and report.duplicates == 1  # x0 again (ids come from line order)
    assert empty_index.paper_count() == 1


def test_partial_jsonl_reports_line_numbers(empty_index, tmp_path):
    path = tmp_path / "partial.jsonl"
    path.write_text(
        json.dumps({"id": "ok1", "title": "Fine", "abstract": ABSTRACT.format(topic="x")}) + "\n"
        + '{"id": "cut", "title": "Trunc\n'
        + json.dumps({"id": "ok2", "title": "Fine too", "abstract": ABSTRACT.format(topic="y")}) + "\n"
    )
    report = ingest_paths(empty_index, [path])
    assert report.added == 2
    assert report.bad_lines[str(path)][0][0] == 2
    assert "line(s) 2" in report.problems()[0]


def test_delete_paper_removes_its_chunks(empty_index, tmp_path):
    ingest_paths(empty_index, [jsonl(tmp_path / "a.jsonl", "Alpha", "Beta")])
    assert empty_index.delete_paper("x0")
    assert not empty_index.delete_paper("x0")
    assert empty_index.paper_count() == 1
    assert empty_index.chunks.get(where={"document_id": "x0"})["ids"] == []


def test_a_huge_record_is_capped_at_max_chunks_per_paper_and_says_so(settings, tmp_path):
    capped = PaperIndex(settings.model_copy(update={"max_chunks_per_paper": 3}))
    words = " ".join(f"word{i} sentence part." for i in range(800))
    path = tmp_path / "huge.jsonl"
    path.write_text(
        json.dumps({"id": "huge", "title": "Huge", "abstract": words}) + "\n"
        + json.dumps({"id": "small", "title": "Small", "abstract": "A small one."}) + "\n"
    )
    report = ingest_paths(capped, [path])
    assert report.added == 2 and report.ok
    [note] = report.notes
    assert note.startswith("huge: ") and note.endswith(
        " chunks, only the first 3 indexed (setting max_chunks_per_paper)"
    )
    assert len(capped.chunks.get(where={"document_id": "huge"})["ids"]) == 3


def test_files_with_nothing_readable_are_listed_as_refused(empty_index, tmp_path):
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"title": {"first": "Ann"}, "abstract": "x"}) + "\n")
    good = jsonl(tmp_path / "good.jsonl", "Alpha")
    report = ingest_paths(empty_index, [wrong, good, tmp_path / "missing.csv"])
    assert report.refused == [wrong]
    assert report.added == 1
    assert "line(s) 1 (first: 'title' must be text, not an object)" in report.problems()[-1]


def test_a_bib_after_the_pdf_fills_in_the_stored_papers_blank_metadata(settings, tmp_path, capsys):
    """A PDF without authors, year or DOI, then a .bib of the same paper: the stored paper
    gains them (record, chunks, lexical filters), keeps its body, id and the rest."""
    from fpdf import FPDF

    from rag.cli import main
    from rag.papers import title_id
    from tests.test_pdf import ABSTRACT as PDF_ABSTRACT
    from tests.test_pdf import BODY_FACT, BODY_QUESTION, FILLER, NEXT_LINE, TITLE

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=20)
    pdf.multi_cell(0, 10, TITLE, **NEXT_LINE)
    pdf.set_font("helvetica", size=11)
    for text in ("Abstract", PDF_ABSTRACT, "1 Introduction", FILLER * 4):
        pdf.multi_cell(0, 6, text, **NEXT_LINE)
    pdf.add_page()
    pdf.multi_cell(0, 6, "2 Experiments", **NEXT_LINE)
    pdf.multi_cell(0, 6, FILLER + BODY_FACT + " " + FILLER, **NEXT_LINE)
    pdf.output(str(tmp_path / "glimmer.pdf"))
    bib = tmp_path / "refs.bib"
    bib.write_text(
        "@article{q2023, title = {" + TITLE + "},\n"
        "  author = {Quarrington, Ada and Moravec, Bertil}, year = {2023},\n"
        "  doi = {10.5555/GLIMMER.2023.017}, journal = {Journal of Sonar},\n"
        "  abstract = {A different abstract that must not replace the PDF's own.}}\n",
        encoding="utf-8",
    )
    index = PaperIndex(settings)
    assert ingest_paths(index, [tmp_path / "glimmer.pdf"]).added == 1
    paper_id = title_id(TITLE)
    before = index.get_papers([paper_id])[paper_id]
    assert (before.authors, before.year, before.doi) == ("", 0, "")
    chunks = index.chunk_count()
    other = ingest_paths(index, [jsonl(tmp_path / "other.jsonl", "Tidal Flats")])  # not enriched
    assert other.enriched == 0

    report = ingest_paths(index, [bib])
    assert (report.added, report.duplicates, report.enriched) == (0, 1, 1)
    assert "enriched 1 stored paper(s)" in report.summary()
    after = index.get_papers([paper_id])[paper_id]
    assert (after.authors, after.year) == ("Ada Quarrington, Bertil Moravec", 2023)
    link = "https://doi.org/10.5555/glimmer.2023.017"
    assert (after.doi, after.url) == ("10.5555/glimmer.2023.017", link)
    assert (after.abstract, after.source) == (before.abstract, before.source)  # not blank: kept
    assert set(index.all_ids()) == {paper_id, "x0"}
    assert index.chunk_count() == chunks + 1  # the body's chunks stay; only "x0" was added
    metadata = index.chunks.get(where={"document_id": paper_id}, include=["metadatas"])["metadatas"]
    assert any(m["kind"] == "body" for m in metadata)  # located body chunks kept as they were
    assert not any("year" in m or "authors" in m for m in metadata)  # paper metadata: one place
    assert ingest_paths(index, [bib]).enriched == 0  # nothing blank is left to fill

    root = str(settings.index)
    code, out, _ = main_json(capsys, main, "ask", BODY_QUESTION, "--llm", "extractive", "--index", root)
    cited = next(s for s in out["sources"] if s["paper_id"] == paper_id)
    assert (cited["year"], cited["authors"], cited["url"]) == (
        2023, "Ada Quarrington, Bertil Moravec", link
    )
    assert cited["cited"] and "417 epochs" in out["answer"]  # still answered from the body
    code, out, _ = main_json(
        capsys, main, "retrieve", "echo transformer epochs", "--year", "2023", "--author", "moravec",
        "--index", root,
    )  # fmt: skip
    assert code == 0 and [row["id"] for row in out] == [paper_id]  # lexical filters see them too


def main_json(capsys, main, *argv: str):
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


# --- streaming ingest (issue 13 item 2) ------------------------------------------------------
def gz_jsonl(path: Path, rows: list[dict], tail: str = "") -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows) + tail)
    return path


def rows(count: int, prefix: str = "s") -> list[dict]:
    return [{"id": f"{prefix}{i}", "title": f"Streaming study {i}",
             "abstract": ABSTRACT.format(topic=f"streamed topic number {i}")}
            for i in range(count)]  # fmt: skip


def test_jsonl_gz_is_read_line_by_line(tmp_path):
    path = gz_jsonl(tmp_path / "big.jsonl.gz", rows(3), tail="{not json}\n")
    parsed, papers = stream_file(path)
    assert next(papers).id == "s0" and parsed.bad_lines == []  # the bad last line: not read yet
    assert [paper.id for paper in papers] == ["s1", "s2"]
    assert parsed.bad_lines == [(4, "invalid JSON (Expecting property name enclosed in double quotes)")]
    assert count_records(path) == 4


def test_streamed_batches_add_everything_with_progress(settings, tmp_path):
    index = PaperIndex(settings.model_copy(update={"ingest_batch_papers": 4}))
    path = gz_jsonl(tmp_path / "stream.jsonl.gz", rows(10), tail="{not json}\n")
    calls: list[tuple[int, int]] = []
    report = ingest_paths(index, [path], progress=lambda done, total: calls.append((done, total)))
    assert (report.added, report.duplicates, report.total_papers) == (10, 0, 10)
    assert report.bad_lines[str(path)][0][0] == 11
    assert sorted(index.lexical.ids) == sorted(index.all_ids()) and index.lexical.count() == 10
    assert calls[0] == (0, 11) and calls[-1] == (10, 10)  # counted towards the file's lines
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert index.lexical.sync_with(index) is False  # BM25 marked in step after every batch


def test_a_multi_batch_ingest_embeds_in_a_child_process_with_the_same_vectors(
    settings, tmp_path, monkeypatch
):
    """From the second batch on, a child process embeds (Chroma's writes hold this
    process's GIL); the index it builds holds exactly the vectors of an in-process run."""
    started: list[EmbeddingProcess] = []

    class Recorded(EmbeddingProcess):
        def __init__(self, *args) -> None:
            super().__init__(*args)
            started.append(self)

    monkeypatch.setattr(rag.index, "EmbeddingProcess", Recorded)
    path = gz_jsonl(tmp_path / "f.jsonl.gz", rows(10))
    stored = []
    for name, child in (("child", True), ("here", False)):
        update = {"index": tmp_path / name, "ingest_batch_papers": 4, "ingest_embed_process": child}
        index = PaperIndex(settings.model_copy(update=update))
        report = ingest_paths(index, [path], progress=lambda done, total: None)
        assert (report.added, report.total_papers, index.lexical.count()) == (10, 10, 10)
        # told 10 papers are coming, the child embeds from the first batch on
        assert ("embedder" in index.__dict__) == (not child)
        chunks = index.chunks.get(include=["embeddings"])
        stored.append(dict(zip(chunks["ids"], np.asarray(chunks["embeddings"]).tolist())))
        assert len(started) == 1  # the first run only
    assert len(stored[0]) == 10 and stored[0] == stored[1]
    ingest_paths(PaperIndex(settings), [gz_jsonl(tmp_path / "small.jsonl.gz", rows(3))])
    assert len(started) == 1  # one batch: embedded in this process, no child to start


def test_the_same_paper_in_two_batches_is_stored_once(settings, tmp_path):
    """A DOI record, then (a batch later, before the first is even written) the same
    paper from a page scrape with only its title: one paper, one duplicate."""
    index = PaperIndex(settings.model_copy(update={"ingest_batch_papers": 1}))
    path = tmp_path / "two.jsonl"
    path.write_text(
        json.dumps({"id": "10.1000/xyz", "doi": "10.1000/xyz", "title": "Shared Title",
                    "abstract": ABSTRACT.format(topic="sharing")}) + "\n"
        + json.dumps({"title": "Shared title", "abstract": ABSTRACT.format(topic="again")}) + "\n"
    )  # fmt: skip
    report = ingest_paths(index, [path])
    assert (report.added, report.duplicates) == (1, 1)
    assert index.all_ids() == ["10.1000/xyz"]


def test_a_failed_write_stops_the_run_and_keeps_what_was_written(settings, tmp_path, monkeypatch):
    index = PaperIndex(settings.model_copy(update={"ingest_batch_papers": 3}))
    written = index._write
    calls = []

    def fail_second(papers, nodes):
        calls.append(len(papers))
        if len(calls) == 2:
            raise OSError("disk full")
        written(papers, nodes)

    monkeypatch.setattr(index, "_write", fail_second)
    with pytest.raises(OSError, match="disk full"):
        ingest_paths(index, [gz_jsonl(tmp_path / "f.jsonl.gz", rows(9))])
    assert sorted(index.all_ids()) == ["s0", "s1", "s2"] == sorted(index.lexical.ids)
    monkeypatch.undo()
    again = ingest_paths(PaperIndex(settings), [tmp_path / "f.jsonl.gz"])  # resume
    assert (again.added, again.duplicates, again.total_papers) == (6, 3, 9)


def test_progress_line_says_count_rate_and_eta():
    assert progress_line(1200, 50_000, 50.0) == "1,200/50,000 papers, 24.0/s, ETA 33m 53s"
    assert progress_line(5, 100_000, 1.0) == "5/100,000 papers, 5.0/s, ETA 5h 33m"
    assert progress_line(10, 10, 2.0) == "10/10 papers, 5.0/s"
    assert progress_line(0, 10, 0.0) == "0/10 papers"
