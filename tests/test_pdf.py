"""PDF extraction (rag/pdf.py) on PDFs generated here: pages, sections, abstract, metadata."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from rag.formats import FormatError, parse_file
from rag.papers import title_id

TITLE = "Glimmerfish Sonar Mapping with Sparse Echo Transformers"
AUTHORS = "Ada Quarrington, Bertil Moravec and Chiara Oyelaran"
ABSTRACT = (
    "We map reef structures from sonar echoes recorded by autonomous gliders. A sparse echo "
    "transformer attends over pulse returns and reconstructs depth maps in real time, improving "
    "reconstruction error over beamforming baselines on three survey sites."
)
BODY_FACT = (
    "The echo transformer was trained for 417 epochs on the Kettlewell lagoon recordings "
    "with a batch of 96 pulse windows."
)
BODY_QUESTION = "How many epochs was the echo transformer trained for on the Kettlewell lagoon recordings?"
NEXT_LINE = {"new_x": "LMARGIN", "new_y": "NEXT"}
FILLER = (
    "Sonar returns are aligned to the glider trajectory before they are windowed. "
    "Each window is normalised by its median energy so that distant returns are not lost. "
)


def make_paper_pdf(path: Path, arxiv_id: str = "2401.04567", doi: str = "") -> Path:
    """A three-page paper: title and authors in large/normal type, an arXiv stamp and an
    optional DOI on page 1, an abstract, numbered sections, and a fact only on page 3.
    The PDF's creation date is 2011, which must never become the year."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2011, 5, 4, tzinfo=timezone.utc))
    pdf.add_page()
    pdf.set_font("helvetica", size=20)
    pdf.multi_cell(0, 10, TITLE, **NEXT_LINE)
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, AUTHORS, **NEXT_LINE)
    pdf.multi_cell(0, 6, "Institute of Marine Robotics, Example University", **NEXT_LINE)
    if arxiv_id:
        pdf.multi_cell(0, 6, f"arXiv:{arxiv_id}v2 [cs.LG] 9 Feb 2024", **NEXT_LINE)
    if doi:
        pdf.multi_cell(0, 6, f"DOI: {doi}", **NEXT_LINE)
    pdf.ln(4)
    for text in ("Abstract", ABSTRACT, "1 Introduction", FILLER * 6):
        pdf.multi_cell(0, 6, text, **NEXT_LINE)
        pdf.ln(2)
    pdf.add_page()
    for text in ("2 Method", FILLER * 10):
        pdf.multi_cell(0, 6, text, **NEXT_LINE)
        pdf.ln(2)
    pdf.add_page()
    for text in ("3 Experiments", FILLER * 2 + BODY_FACT + " " + FILLER, "References",
                 "[1] A. Author. A cited paper about glimmerfish epochs. 2019."):  # fmt: skip
        pdf.multi_cell(0, 6, text, **NEXT_LINE)
        pdf.ln(2)
    pdf.output(str(path))
    return path


def test_metadata_abstract_and_located_passages(tmp_path):
    paper = parse_file(make_paper_pdf(tmp_path / "paper.pdf")).papers[0]
    assert paper.title == TITLE
    assert paper.authors == "Ada Quarrington, Bertil Moravec, Chiara Oyelaran"
    assert paper.year == 2024  # from the arXiv id, not the 2011 creation date
    assert (paper.id, paper.url, paper.doi) == (
        "2401.04567", "https://arxiv.org/abs/2401.04567", ""
    )
    assert paper.abstract == ABSTRACT
    assert "417 epochs" not in paper.abstract
    fact = [p for p in paper.passages if "417 epochs" in p.text]
    assert len(fact) == 1
    assert (fact[0].kind, fact[0].page, fact[0].section) == ("body", 3, "3 Experiments")
    assert fact[0].location == "§ 3 Experiments, p. 3"
    assert {p.page for p in paper.passages} == {1, 2, 3}
    assert not any("cited paper" in p.text for p in paper.passages)  # references left out
    assert not any(p.text.startswith("Abstract") for p in paper.passages)


def test_doi_in_the_text_becomes_the_id_and_link(tmp_path):
    path = make_paper_pdf(tmp_path / "doi.pdf", arxiv_id="", doi="10.5555/glimmer.2023.017")
    paper = parse_file(path).papers[0]
    assert (paper.id, paper.doi) == ("10.5555/glimmer.2023.017", "10.5555/glimmer.2023.017")
    assert paper.url == "https://doi.org/10.5555/glimmer.2023.017"
    assert paper.year == 0  # no arXiv id, no dated line: unknown, not the file's 2011


def test_no_identifier_falls_back_to_the_title_id(tmp_path):
    paper = parse_file(make_paper_pdf(tmp_path / "plain.pdf", arxiv_id="")).papers[0]
    assert (paper.id, paper.url) == (title_id(TITLE), "")


@pytest.mark.parametrize("cut", [0.3, 0.6])
def test_truncated_pdf_is_one_clear_error(tmp_path, capfd, cut):
    whole = make_paper_pdf(tmp_path / "whole.pdf").read_bytes()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(whole[: int(len(whole) * cut)])
    try:
        paper = parse_file(broken).papers[0]  # PDFium may repair a cut file: then it reads
        assert paper.title
    except FormatError as exc:
        assert str(exc).startswith(f"{broken}: unreadable PDF") and "\n" not in str(exc)
    assert capfd.readouterr().err == ""  # no stray library warnings


def test_source_is_an_absolute_path_so_the_viewer_finds_it_from_anywhere(tmp_path, monkeypatch):
    make_paper_pdf(tmp_path / "paper.pdf")
    monkeypatch.chdir(tmp_path)
    paper = parse_file(Path("paper.pdf")).papers[0]
    assert paper.source == str(tmp_path / "paper.pdf")
