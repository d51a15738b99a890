"""The PDF viewer's library half (rag/pdfpages.py): pages rendered, cited passages located."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from rag.pdf import PdfError
from rag.pdfpages import fold, locate, render_page
from tests.test_pdf import ABSTRACT, BODY_FACT, FILLER, NEXT_LINE, make_paper_pdf


@pytest.fixture(scope="module")
def paper(tmp_path_factory) -> Path:
    return make_paper_pdf(tmp_path_factory.mktemp("pdfpages") / "paper.pdf")


def test_fold_ignores_line_breaks_hyphenation_marks_and_ligatures():
    page = "The reﬁned imple\x02\r\nmentation runs long-\r\nrange   surveys."
    assert fold(page)[0] == fold("The refined implementation runs long-range surveys.")[0]
    folded, origin = fold("A-b c")
    assert (folded, origin) == ("abc", [0, 2, 4])


def test_locate_finds_a_sentence_broken_over_lines():
    page = f"Intro text.\r\n{BODY_FACT[:40]}\r\n{BODY_FACT[40:]} More text."
    start, end, exact = locate(page, BODY_FACT)
    assert exact and page[start:end].startswith("The echo") and page[start:end].endswith("windows")


def test_locate_falls_back_to_a_prefix_of_the_quote():
    page = f"Intro. {BODY_FACT} Next."
    quote = BODY_FACT.replace("96 pulse windows", "96 pulse windows (a running header cut in)")
    start, end, exact = locate(page, quote)
    assert not exact and page[start:].startswith("The echo transformer")
    assert end > start + len(BODY_FACT) // 2


def test_locate_gives_none_when_the_passage_is_not_there():
    assert locate(f"Intro. {BODY_FACT}", "Glaciers retreat faster in warm summers.") is None
    assert locate("", BODY_FACT) is None
    assert locate("The echo was loud.", "The echo transformer was trained") is None  # 4 words minimum


def test_cited_page_is_rendered_with_the_passage_boxed(paper):
    rendered = render_page(paper, 3, BODY_FACT, width_px=800)
    assert (rendered.page, rendered.pages, rendered.width) == (3, 3, 800)
    image = Image.open(io.BytesIO(rendered.image))
    assert image.format == "WEBP" and image.size == (rendered.width, rendered.height)
    assert rendered.exact and 2 <= len(rendered.boxes) <= 4  # the fact spans a few lines
    grey = image.convert("L")
    for box in rendered.boxes:
        assert 0 <= box.left < box.right <= 1 and 0 <= box.top < box.bottom <= 1
        area = grey.crop((int(box.left * image.width), int(box.top * image.height),
                          int(box.right * image.width), int(box.bottom * image.height)))  # fmt: skip
        assert area.getextrema()[0] < 100  # there is type under every box
    top = min(box.top for box in rendered.boxes)
    blank = grey.crop((0, int(0.8 * image.height), image.width, image.height))
    assert top < 0.5 and blank.getextrema()[0] > 200  # the boxes sit on the text, not below it


def test_other_pages_and_missing_quotes_have_no_boxes(paper):
    assert render_page(paper, 2, BODY_FACT).boxes == ()
    assert render_page(paper, 3, "Nothing like this sentence is in the paper at all.").boxes == ()
    assert render_page(paper, 3).boxes == ()
    assert render_page(paper, 1, ABSTRACT).exact


def test_page_numbers_are_clamped_to_the_document(paper):
    assert render_page(paper, 99).page == 3
    assert render_page(paper, 0).page == 1


def test_a_hyphenated_line_end_is_still_located(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, FILLER, **NEXT_LINE)
    pdf.multi_cell(0, 6, "The glider reconstruction imple-", **NEXT_LINE)
    pdf.multi_cell(0, 6, "mentation runs in real time on board.", **NEXT_LINE)
    path = tmp_path / "hyphen.pdf"
    pdf.output(str(path))
    sentence = "The glider reconstruction implementation runs in real time on board."
    whole = render_page(path, 1, sentence)
    assert whole.exact and len(whole.boxes) == 2  # over both lines
    prefix = render_page(path, 1, "The glider reconstruction implementation runs in simulation.")
    assert not prefix.exact and len(prefix.boxes) == 2


@pytest.mark.parametrize("content", [None, b"%PDF-1.4 not really a pdf"])
def test_a_missing_or_broken_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "gone.pdf"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PdfError) as error:
        render_page(path, 1)
    assert str(error.value).startswith(f"{path}: unreadable PDF") and "\n" not in str(error.value)
