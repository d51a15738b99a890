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


# --- strict records (issue 12 item 8) --------------------------------------------------------

def test_wrong_field_types_are_refused_per_line_not_stored_as_reprs(tmp_path):
    good = {"id": "g1", "title": "Good", "abstract": ABSTRACT}
    path = write_jsonl(tmp_path / "types.jsonl", [
        {"title": {"first": "Ann"}, "abstract": ABSTRACT},
        {"id": {"x": 1}, "title": "Dict id", "abstract": ABSTRACT},
        {"title": "Boolean abstract", "abstract": True},
        {**good, "authors": [{"x": 1}]},
        {**good, "year": {"y": 2020}},
        {**good, "categories": 5},
        good,
    ])  # fmt: skip
    parsed = parse_file(path)
    assert [paper.id for paper in parsed.papers] == ["g1"]
    assert parsed.bad_lines == [
        (1, "'title' must be text, not an object"),
        (2, "'id' must be a string or a number, not an object"),
        (3, "'abstract' must be text, not true/false"),
        (4, "'authors' entries must be names, not an object"),
        (5, "'year' must be a number or a date, not an object"),
        (6, "'categories' must be text, not int"),
    ]


def test_authors_years_and_ids_in_every_accepted_shape(tmp_path):
    rows = [
        {"id": 7, "title": "A", "abstract": ABSTRACT, "authors": ["Ann Lee", "Bo Chen"], "year": 2021},
        {"id": "b", "title": "B", "abstract": ABSTRACT,
         "authors": [{"name": "Ann Lee"}, {"first": "Bo", "last": "Chen"}], "year": "2019-05-01"},
        {"id": "c", "title": "C", "abstract": ABSTRACT,
         "authors": [["Lee", "Ann", ""], ["Chen", "Bo", ""]], "date": "Mon, 2 Jan 2023"},
        {"id": "d", "title": "D", "abstract": ABSTRACT, "authors": "Ann Lee, Bo Chen", "year": 0},
    ]  # fmt: skip
    papers = parse_file(write_jsonl(tmp_path / "shapes.jsonl", rows)).papers
    assert [(p.id, p.authors, p.year) for p in papers] == [
        ("7", "Ann Lee, Bo Chen", 2021),
        ("b", "Ann Lee, Bo Chen", 2019),
        ("c", "Ann Lee, Bo Chen", 2023),
        ("d", "Ann Lee, Bo Chen", 0),  # 0 = unknown, as many exports write it
    ]


def test_one_bad_byte_late_in_a_file_refuses_only_its_line(tmp_path):
    good = [json.dumps({"id": f"p{i}", "title": f"Paper {i}", "abstract": ABSTRACT}) for i in range(600)]
    path = tmp_path / "late.jsonl"
    path.write_bytes(("\n".join(good) + "\n").encode() + b'{"id": "bad", "title": "Caf\xe9"}\n')
    assert path.stat().st_size > 100_000
    parsed = parse_file(path)
    assert len(parsed.papers) == 600
    assert parsed.bad_lines == [(601, "not valid UTF-8 (byte 0xe9 at column 28)")]


def test_bad_bytes_in_a_csv_row_refuse_that_row(tmp_path):
    path = tmp_path / "bytes.csv"
    path.write_bytes(
        b"id,title,abstract\np1,Fine,"
        + ABSTRACT.encode()
        + b"\np2,Caf\xe9,"
        + ABSTRACT.encode()
        + b"\n"
    )
    parsed = parse_file(path)
    assert [p.id for p in parsed.papers] == ["p1"]
    assert parsed.bad_lines == [(3, "not valid UTF-8")]


def test_only_http_links_and_no_control_characters(tmp_path):
    rows = [
        {"id": "2301.01234", "title": "Evil\x1b[2J title\x07", "abstract": ABSTRACT,
         "url": "javascript:alert(1)", "authors": "Ann\x1b]0;x\x07 Lee"},
        {"id": "u\x1b1", "title": "Linked", "abstract": ABSTRACT, "url": "https://example.org/p"},
        {"id": "u2", "title": "Data link", "abstract": ABSTRACT, "url": "data:text/html,hi"},
    ]  # fmt: skip
    papers = parse_file(write_jsonl(tmp_path / "links.jsonl", rows)).papers
    assert [(p.id, p.url) for p in papers] == [
        ("2301.01234", "https://arxiv.org/abs/2301.01234"),  # the arXiv link instead
        ("u1", "https://example.org/p"),
        ("u2", ""),
    ]
    assert papers[0].title == "Evil[2J title" and papers[0].authors == "Ann]0;x Lee"


def test_oversized_records_are_refused_naming_the_limit_and_setting(tmp_path):
    from rag.formats import RecordLimits

    rows = [{"id": "big", "title": "Big", "abstract": "word " * 5000},
            {"id": "ok", "title": "Ok", "abstract": ABSTRACT},
            {"id": "long-title", "title": "T" * 50, "abstract": ABSTRACT}]  # fmt: skip
    limits = RecordLimits(max_abstract_chars=1000, max_title_chars=40)
    parsed = parse_file(write_jsonl(tmp_path / "big.jsonl", rows), limits)
    assert [p.id for p in parsed.papers] == ["ok"]
    assert parsed.bad_lines == [
        (1, "abstract/text has 24,999 characters, over the limit of 1,000 (setting max_abstract_chars)"),
        (3, "title has 50 characters, over the limit of 40 (setting max_title_chars)"),
    ]


def test_a_corrupt_pdf_prints_nothing_before_its_error(tmp_path, capfd):
    whole = make_pdf(tmp_path / "whole.pdf", "Title", ABSTRACT, "Body text. " * 50).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FormatError, match="unreadable PDF|no extractable text"):
        parse_file(cut)
    assert capfd.readouterr().err == ""


# --- property-based: the parsers never crash, never store non-text (issue 12) ----------------

from hypothesis import HealthCheck, given, settings as hypothesis_settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(["id", "_id", "title", "abstract", "text", "authors", "year", "date",
                          "url", "categories", "metadata", "versions"])  # fmt: skip
RECORDS = st.dictionaries(FIELDS, JSON_VALUES, max_size=6)
PROPERTY = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_clean(parsed, line_count: int) -> None:
    for paper in parsed.papers:
        for value in (paper.id, paper.title, paper.abstract, paper.authors, paper.url, paper.categories):
            assert isinstance(value, str)
            assert not any(ch in value for ch in "\x1b\x00\x07")
        assert paper.title and paper.abstract and isinstance(paper.year, int)
        assert paper.url == "" or paper.url.startswith(("http://", "https://"))
    for number, reason in parsed.bad_lines:
        assert 0 <= number <= line_count + 1 and reason and "\n" not in reason


@PROPERTY
@given(rows=st.lists(RECORDS | JSON_VALUES, max_size=6))
def test_jsonl_records_of_any_shape(tmp_path, rows):
    path = tmp_path / "any.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    try:
        parsed = parse_file(path)
    except FormatError:
        return
    assert_clean(parsed, len(rows))
    assert len(parsed.papers) + len(parsed.bad_lines) == len(rows)  # each line: one or other
    bad = {number for number, _ in parsed.bad_lines}
    assert {i for i, row in enumerate(rows, start=1) if not isinstance(row, dict)} <= bad


@PROPERTY
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".csv", ".txt", ".jsonl.gz"]))
def test_arbitrary_bytes_raise_only_format_errors(tmp_path, data, suffix):
    path = tmp_path / f"blob{suffix}"
    path.write_bytes(data)
    try:
        parsed = parse_file(path)
    except FormatError as exc:
        assert "\n" not in str(exc)
        return
    assert_clean(parsed, data.count(b"\n"))


@PROPERTY
@given(cells=st.lists(st.lists(st.text(max_size=20), min_size=3, max_size=3), max_size=5))
def test_csv_rows_of_any_text(tmp_path, cells):
    path = tmp_path / "any.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "abstract"])
        writer.writerows(cells)
    try:
        parsed = parse_file(path)
    except FormatError as exc:  # e.g. a NUL byte: refused as binary, in one line
        assert "\n" not in str(exc)
        return
    assert_clean(parsed, sum(1 + "".join(row).count("\n") for row in cells) + 1)


@PROPERTY
@given(pairs=st.lists(st.tuples(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=120)),
                      min_size=1, max_size=4))  # fmt: skip
def test_seed_pages_of_any_text(tmp_path, pairs):
    lines = ["Daily papers", "Mar 14"] + [part for pair in pairs for part in pair]
    path = tmp_path / "page.txt"
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    try:
        parsed = parse_file(path)
    except FormatError as exc:
        assert "\n" not in str(exc)
        return
    assert_clean(parsed, 4 * len(pairs) + 4)
