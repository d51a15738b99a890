"""Paper ids from DOIs / arXiv ids / titles, and the same paper from two sources stored once."""

from __future__ import annotations

from pathlib import Path

from rag.identity import arxiv_id, bare_doi, merge_batch, paper_id
from rag.ingest import ingest_paths
from rag.papers import Paper, title_id
from tests.test_formats import ABSTRACT

TITLE = "Hybrid Retrieval of Scientific Claims"


def seed_page(path: Path, title: str = TITLE) -> Path:
    path.write_text(f"Daily papers\n\nMar 14\n\n{title}\n\n{ABSTRACT}\n", encoding="utf-8")
    return path


def bib_file(path: Path, title: str = TITLE) -> Path:
    path.write_text(
        "@article{k, title = {" + title.upper() + "!}, author = {Ng, Andrew and Li, Fei-Fei},\n"
        "  year = {2024}, doi = {10.9999/HRSC.1}, abstract = {" + ABSTRACT + "}}\n",
        encoding="utf-8",
    )
    return path


def test_identifiers_are_found_in_what_managers_write():
    assert bare_doi("https://doi.org/10.1145/3292500.3330701.") == "10.1145/3292500.3330701"
    assert bare_doi("no doi here") == ""
    assert arxiv_id("arXiv:2401.01234v2") == "2401.01234"
    assert arxiv_id("", "https://arxiv.org/pdf/2401.01234v1.pdf") == "2401.01234"
    assert arxiv_id("10.48550/arXiv.2305.00001") == "2305.00001"
    assert arxiv_id("hep-th/9901001") == "hep-th/9901001"
    assert arxiv_id("Journal of Things 12(3)") == ""
    assert paper_id("10.1/x", "2401.01234", "T") == "10.1/x"
    assert paper_id("10.48550/arxiv.2401.01234", "", "T") == "2401.01234"
    assert paper_id("", "", "Some Title") == title_id("Some Title")


def test_batch_merges_title_id_records_into_the_identified_one_and_keeps_distinct_ids():
    seed = Paper(id=title_id(TITLE), title=TITLE, abstract=ABSTRACT, source="page.txt")
    bib = Paper(id="10.9999/hrsc.1", title=TITLE.upper(), abstract=ABSTRACT, authors="A. Ng",
                year=2024, doi="10.9999/hrsc.1")  # fmt: skip
    other_a = Paper(id="doc-1", title="Introduction", abstract="one")
    other_b = Paper(id="doc-2", title="Introduction", abstract="two")
    merged = merge_batch([seed, bib, other_a, other_b])
    assert [paper.id for paper in merged] == ["10.9999/hrsc.1", "doc-1", "doc-2"]
    kept = merged[0]
    assert kept.source == "page.txt" and kept.authors == "A. Ng" and kept.year == 2024


def test_seed_then_bib_is_stored_once_under_the_seed_id(empty_index, tmp_path):
    first = ingest_paths(empty_index, [seed_page(tmp_path / "page.txt")])
    assert first.added == 1
    second = ingest_paths(empty_index, [bib_file(tmp_path / "refs.bib")])
    assert (second.added, second.duplicates, second.total_papers) == (0, 1, 1)
    assert empty_index.all_ids() == [title_id(TITLE)]


def test_bib_then_seed_is_stored_once_under_the_doi(empty_index, tmp_path):
    ingest_paths(empty_index, [bib_file(tmp_path / "refs.bib")])
    again = ingest_paths(empty_index, [seed_page(tmp_path / "page.txt")])
    assert (again.added, again.total_papers) == (0, 1)
    (paper,) = empty_index.get_papers(["10.9999/hrsc.1"]).values()
    assert paper.authors == "Andrew Ng, Fei-Fei Li" and paper.year == 2024


def test_both_in_one_ingest_keep_the_doi_and_the_bib_metadata(empty_index, tmp_path):
    report = ingest_paths(
        empty_index, [seed_page(tmp_path / "page.txt"), bib_file(tmp_path / "refs.bib")]
    )
    assert (report.added, report.duplicates) == (1, 1)
    assert empty_index.all_ids() == ["10.9999/hrsc.1"]
    (paper,) = empty_index.get_papers(["10.9999/hrsc.1"]).values()
    assert paper.year == 2024 and paper.authors.startswith("Andrew Ng")


def test_two_datasets_records_with_one_title_stay_two_papers(empty_index, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        '{"_id": "d1", "title": "Results", "text": "First document text about cells."}\n'
        '{"_id": "d2", "title": "Results", "text": "Second document text about stars."}\n',
        encoding="utf-8",
    )
    assert ingest_paths(empty_index, [path]).added == 2
