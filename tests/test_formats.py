"""Each input format's reader, on real files written to a temp dir."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from rag.formats import FormatError, detect_format, expand_paths, parse_file
from rag.papers import normalise_title, title_id
from rag.settings import BUNDLED_CORPUS

ABSTRACT = (
    "We study the retrieval of scientific abstracts with hybrid methods and show that "
    "combining lexical and dense signals improves recall on claim verification."
)


def write_jsonl(path: Path, rows: list, raw_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(row) for row in rows] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_seed_pages_give_273_unique_papers():
    papers = [paper for path in expand_paths([BUNDLED_CORPUS])[0] for paper in parse_file(path).papers]
    assert len(papers) == 327
    assert len({paper.id for paper in papers}) == 273
    first = parse_file(sorted(BUNDLED_CORPUS.glob("*.txt"))[0]).papers[0]
    assert first.title.startswith("TokenUnify: Scalable Autoregressive Visual Pre-training")
    assert first.abstract.startswith("Autoregressive next-token prediction is a standard")
    assert first.id == title_id(first.title)


def test_seed_detection_uses_content_not_name(tmp_path):
    page = tmp_path / "page.data"
    page.write_text(
        "new\n\nSubscribe\n\nMar 14\n\nA Title About Graphs\n\n" + ABSTRACT + "\n\n"
        "Second Title\n\n" + ABSTRACT.upper() + "\n",
        encoding="utf-8",
    )
    assert detect_format(page) == "seed"
    assert [p.title for p in parse_file(page).papers] == ["A Title About Graphs", "Second Title"]


def test_title_ids_are_stable_across_punctuation_and_case():
    assert normalise_title("  Café:  Deep-Learning!  ") == "cafe deep learning"
    assert title_id("Café: Deep-Learning!") == title_id("cafe deep learning")
    assert title_id("One paper") != title_id("Another paper")


def test_arxiv_metadata_jsonl(tmp_path):
    record = {
        "id": "2301.01234", "title": "A  Paper\n on Things", "abstract": "  " + ABSTRACT + "\n",
        "authors": "A. Author, B. Author", "categories": "cs.CL cs.IR",
        "versions": [{"version": "v1", "created": "Mon, 2 Jan 2023 10:00:00 GMT"}],
    }  # fmt: skip
    paper = parse_file(write_jsonl(tmp_path / "arxiv.jsonl", [record])).papers[0]
    assert paper.id == "2301.01234"
    assert paper.title == "A Paper on Things"
    assert paper.abstract == ABSTRACT
    assert paper.year == 2023
    assert paper.categories == "cs.CL cs.IR"
    assert paper.url == "https://arxiv.org/abs/2301.01234"
    assert paper.authors == "A. Author, B. Author"


def test_beir_corpus_gzip_keeps_given_ids(tmp_path):
    path = tmp_path / "corpus.jsonl.gz"
    rows = [{"_id": "4983", "title": "Microstructural development", "text": ABSTRACT,
             "metadata": {"year": 2011}}]  # fmt: skip
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(json.dumps(row) for row in rows))
    parsed = parse_file(path)
    assert parsed.format == "jsonl"
    assert [(p.id, p.year, p.url) for p in parsed.papers] == [("4983", 2011, "")]


def test_jsonl_bad_lines_are_reported_and_good_ones_kept(tmp_path):
    good = {"title": "Good", "abstract": ABSTRACT}
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [good, {"title": "No abstract"}],
        raw_lines=('{"title": "Truncated", "abstr', json.dumps({**good, "title": "Also good"})),
    )
    parsed = parse_file(path)
    assert [p.title for p in parsed.papers] == ["Good", "Also good"]
    assert [number for number, _ in parsed.bad_lines] == [2, 3]
    assert "invalid JSON" in parsed.bad_lines[1][1]


def test_csv_with_same_columns(tmp_path):
    path = tmp_path / "papers.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "title", "abstract", "year", "url"])
        writer.writeheader()
        writer.writerow({"id": "p1", "title": "CSV paper", "abstract": ABSTRACT, "year": "2021",
                         "url": "https://example.org/p1"})  # fmt: skip
        writer.writerow({"id": "p2", "title": "Missing", "abstract": "", "year": "", "url": ""})
    parsed = parse_file(path)
    assert [(p.id, p.year, p.url) for p in parsed.papers] == [("p1", 2021, "https://example.org/p1")]
    assert parsed.bad_lines and parsed.bad_lines[0][0] == 3


def test_csv_without_required_columns_is_an_error(tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("name,body\nx,y\n", encoding="utf-8")
    with pytest.raises(FormatError, match="needs a 'title'"):
        parse_file(path)


def make_pdf(path: Path, title: str, abstract: str, body: str) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    for text in (title, "Abstract", abstract, "1 Introduction", body):
        pdf.multi_cell(0, 6, text)
        pdf.ln(2)
    pdf.output(str(path))
    return path


def test_pdf_text_title_and_abstract(tmp_path):
    body = "Transformers have changed retrieval. " * 40
    path = make_pdf(tmp_path / "paper.pdf", "Hybrid Retrieval for Claims", ABSTRACT, body)
    paper = parse_file(path).papers[0]
    assert paper.title == "Hybrid Retrieval for Claims"
    assert paper.abstract.startswith("We study the retrieval of scientific abstracts")
    assert "Introduction" not in paper.abstract
    assert "Transformers have changed retrieval." in paper.body
    assert paper.id == title_id("Hybrid Retrieval for Claims")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"", "empty file"),
        ("blank.txt", b"\n\n  \n", "empty file"),
        ("blob.bin", bytes(range(256)) * 10, "binary file"),
        ("notes.txt", b"just some notes\nnothing like a paper page\n", "unknown format"),
        ("broken.pdf", b"%PDF-1.4\ngarbage", "unreadable PDF"),
    ],
)
def test_bad_files_raise_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FormatError, match=message) as info:
        parse_file(path)
    assert "\n" not in str(info.value)


def test_directory_expansion_skips_hidden_and_unsupported(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_text("{}")
    (tmp_path / ".hidden.jsonl").write_text("{}")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    files, missing = expand_paths([tmp_path, tmp_path / "missing.jsonl"])
    assert files == [tmp_path / "sub" / "a.jsonl"]
    assert missing == [f"{tmp_path / 'missing.jsonl'}: no such file or directory"]
