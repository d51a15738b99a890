"""Corpus-tab logic without a browser: upload checks, listing, search, statistics."""

from __future__ import annotations

from pathlib import Path

from rag.papers import Paper
from ui.corpus import check_upload, corpus_stats, paper_rows

PAPERS = [
    Paper("2101.1", "Quantile Aggregation", "abs", authors="Ann Lee", year=2021, categories="stat.ML cs.LG", source="/x/a.jsonl"),
    Paper("t-2", "Model Soups", "abs", authors="Bo Chen", year=2022, categories="cs.LG", source="/x/a.jsonl"),
    Paper("t-3", "Undated Notes", "abs"),
]  # fmt: skip


def test_check_upload_accepts_supported_types_within_the_size_limit(tmp_path):
    for name in ("a.jsonl", "b.JSONL.GZ", "c.pdf", "d.csv", "e.txt"):
        (tmp_path / name).write_bytes(b"x" * 10)
        assert check_upload(tmp_path / name, max_mb=1) is None


def test_check_upload_refuses_wrong_type_and_oversize(tmp_path):
    (tmp_path / "slides.pptx").write_bytes(b"x")
    assert "slides.pptx: unsupported type" in check_upload(tmp_path / "slides.pptx", max_mb=1)
    (tmp_path / "big.jsonl").write_bytes(b"x" * 2_100_000)
    assert (
        check_upload(tmp_path / "big.jsonl", max_mb=2)
        == "big.jsonl: 2.1 MB is over the 2 MB upload limit (setting ui_max_upload_mb)"
    )


def test_paper_rows_search_id_title_and_authors_case_insensitively():
    assert [row[0] for row in paper_rows(PAPERS)] == ["2101.1", "t-2", "t-3"]
    assert [row[0] for row in paper_rows(PAPERS, "soups")] == ["t-2"]
    assert [row[0] for row in paper_rows(PAPERS, "ANN LEE")] == ["2101.1"]
    assert [row[0] for row in paper_rows(PAPERS, "t-3")] == ["t-3"]
    assert paper_rows(PAPERS, limit=2)[-1][0] == "t-2"
    assert paper_rows(PAPERS)[0][5] == "a.jsonl" and paper_rows(PAPERS)[2][2] == ""


def test_corpus_stats_on_a_real_index(seed_index):
    papers = list(seed_index.iter_papers())
    text = corpus_stats(seed_index, papers)
    assert f"**{seed_index.paper_count()}** papers" in text
    assert f"**{seed_index.chunk_count()}** chunks" in text
    assert Path(papers[0].source).name in text


def test_corpus_stats_counts_years_and_categories(seed_index):
    text = corpus_stats(seed_index, PAPERS)
    assert "years 2021–2022 (2 papers dated)" in text
    assert "cs.LG (2), stat.ML (1)" in text


def test_upload_count_limit_names_the_setting():
    from ui.corpus import split_by_count

    kept, refused = split_by_count(["/t/a.pdf", "/t/b.pdf", "/t/c.jsonl"], 2)
    assert kept == ["/t/a.pdf", "/t/b.pdf"]
    assert refused == ["c.jsonl: over the 2 files per upload limit (setting ui_max_upload_files)"]


def test_a_refused_upload_is_not_kept_in_the_uploads_folder(empty_index, settings, tmp_path):
    import json

    from ui.corpus import CorpusTab

    tab = CorpusTab(settings, empty_index)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"title": True, "abstract": "x"}) + "\n")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "g", "title": "Good", "abstract": "A good paper."}) + "\n")
    report, *_ = tab.ingest_files(
        [str(bad), str(good)], "", "newest first", 1, progress=lambda *a, **k: None
    )
    assert "added 1" in report and "bad.jsonl: skipped 1 bad record(s)" in report
    assert sorted(p.name for p in tab.uploads.iterdir()) == ["good.jsonl"]


def test_pages_sort_undated_last_and_titles_link_out():
    from ui.corpus import paper_page

    linked = [*PAPERS, Paper("2101.9", "Alpha [draft]", "abs", year=2020, url="https://arxiv.org/abs/2101.9")]
    rows, page, info = paper_page(linked, sort="newest first", page=1, page_size=2)
    assert [row[0] for row in rows] == ["t-2", "2101.1"] and (page, info) == (1, "rows 1–2 of 4 · page 1 of 2")
    rows, page, info = paper_page(linked, sort="newest first", page=9, page_size=2)
    assert [row[0] for row in rows] == ["2101.9", "t-3"] and page == 2  # clamped to the last page
    assert rows[0][1] == "[Alpha (draft)](https://arxiv.org/abs/2101.9)"
    rows, _, _ = paper_page(linked, sort="title A–Z")
    assert [row[0] for row in rows] == ["2101.9", "t-2", "2101.1", "t-3"]
    assert paper_page(linked, query="nothing")[2] == "no papers · page 1 of 1"


def test_an_upload_drives_the_progress_bar_with_the_librarys_progress_line(empty_index, settings, tmp_path):
    import json

    from ui.corpus import CorpusTab

    calls: list[tuple[float, str]] = []
    data = tmp_path / "two.jsonl"
    data.write_text("".join(
        json.dumps({"id": f"u{i}", "title": f"Upload {i}", "abstract": f"Uploaded abstract {i}."}) + "\n"
        for i in range(2)
    ))  # fmt: skip
    report, *_ = CorpusTab(settings, empty_index).ingest_files(
        [str(data)], "", "newest first", 1, progress=lambda f, desc="": calls.append((f, desc))
    )
    assert "added 2" in report
    assert calls[0] == (0, "parsing") and calls[1][1].startswith("0/2 papers")
    fraction, line = calls[-1]
    assert fraction == 1.0 and line.startswith("2/2 papers, ") and line.endswith("/s")
