"""The PDF viewer's server side (ui/pdfview.py) over a real index and a real extractive answer.

The browser half (click, keyboard, page navigation, download) is in tests/test_ui_browser.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import pytest

from rag.answer import Answerer
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from tests.conftest import make_settings
from tests.test_ingest import jsonl
from tests.test_pdf import BODY_QUESTION, TITLE, make_paper_pdf
from ui.chat import ChatTurns
from ui.pdfview import PdfViewer, sources_panel, target_of, viewable


@pytest.fixture(scope="module")
def answered(tmp_path_factory):
    """An index with the three-page PDF (fact on p. 3) and a jsonl paper; one answer."""
    root = tmp_path_factory.mktemp("pdfview")
    settings = make_settings(root, llm="extractive")
    index = PaperIndex(settings)
    (root / "files").mkdir()
    pdf = make_paper_pdf(root / "files" / "glimmer.pdf")
    ingest_paths(index, [pdf, jsonl(root / "files" / "other.jsonl", "Sonar Echo Windows")])
    result = Answerer(index, settings).ask(BODY_QUESTION)
    return settings, index, result, pdf


def cited_source(result):
    return next(s for s in result.sources if s.title == TITLE)


def test_only_papers_with_a_pdf_on_disk_get_buttons(answered):
    _, index, result, _ = answered
    assert viewable(index, [result]) == {cited_source(result).paper_id}
    panel = sources_panel(index, ChatTurns.of([result], 10))
    n = cited_source(result).n
    assert f'class="open-pdf" data-turn="0" data-n="{n}" data-page="3"' in panel
    assert panel.count('class="open-pdf"') == 1


def test_opening_a_button_shows_the_cited_page_with_the_passage_boxed(answered):
    settings, index, result, pdf = answered
    n = cited_source(result).n
    viewer = PdfViewer(settings, index)
    panel, header, view, number, target, download = viewer.open(f"0:{n}:3", ChatTurns.of([result], 10))
    assert panel.visible is True and number == 3
    assert "p. 3 of 3" in header and "cited passage highlighted" in header
    assert view.count('class="pdf-highlight"') >= 2 and 'alt="page 3 of ' in view
    assert download.visible is True  # a copy of the very file, served from a temp dir
    copy = Path(download.value["path"])
    assert copy != pdf and copy.read_bytes() == pdf.read_bytes()
    header, view, number, moved = viewer.step(target, -1)
    assert (number, moved.page) == (2, 2) and "the cited passage is on p. 3" in header
    assert 'class="pdf-highlight"' not in view
    assert viewer.step(viewer.step(target, 1)[3], 1)[2] == 3  # clamped at the last page


@pytest.mark.parametrize(
    "request_text", ["", "0:1", "../../etc/passwd", "0:1:3/../../x", "7:1:3", "0:99:3", "a:b:c"]
)
def test_requests_that_name_no_source_of_this_session_open_nothing(answered, request_text):
    settings, index, result, _ = answered
    assert target_of(ChatTurns.of([result], 10), request_text) is None
    assert PdfViewer(settings, index).open(request_text, ChatTurns.of([result], 10)) == (gr.skip(),) * 6


def test_buttons_name_turns_by_their_chat_number_even_when_older_ones_were_dropped(answered):
    _, _, result, _ = answered
    n = cited_source(result).n
    kept = ChatTurns.of([result, result, result], 1)  # turns 0 and 1 no longer kept
    assert target_of(kept, f"2:{n}:3") is not None
    assert target_of(kept, f"0:{n}:3") is None


def test_a_moved_file_gives_a_clear_message_and_no_button(answered, tmp_path):
    settings, index, result, pdf = answered
    n = cited_source(result).n
    viewer = PdfViewer(settings, index)
    moved = tmp_path / "elsewhere.pdf"
    shutil.move(pdf, moved)
    try:
        assert viewable(index, [result]) == set()
        _, header, view, number, _, download = viewer.open(f"0:{n}:3", ChatTurns.of([result], 10))
        assert "is missing" in header and str(pdf) in header and "moved or deleted" in header
        assert (view, number, download.visible) == ("", None, False)
    finally:
        shutil.move(moved, pdf)


def test_a_reopened_conversation_keeps_its_pdf_buttons(answered, tmp_path):
    from rag.conversations import ANONYMOUS, ConversationStore
    from ui.history import HistoryPanel

    _, index, result, _ = answered
    store = ConversationStore.for_index(tmp_path)
    conversation_id = store.sync(ANONYMOUS, "", [result], {})
    sources = HistoryPanel(store, 10, index)._open(ANONYMOUS, conversation_id)[1]
    assert f'data-n="{cited_source(result).n}" data-page="3"' in sources
