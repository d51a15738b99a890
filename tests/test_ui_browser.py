"""End-to-end: the running app driven in headless Debian Chromium (Playwright).

The app serves a private copy of the bundled-corpus index (uploads must not
leak into other tests) in extractive mode, so answers take well under a second.
Set UI_SCREENSHOT_DIR to keep a screenshot of every tab (docs/screenshots/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
QUESTION = "How can quantile regression models be aggregated?"

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(
        "Debian chromium not installed (make browser, or apt-get install chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=60_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def screenshot(page: Page, name: str, full_page: bool = False) -> None:
    directory = os.environ.get("UI_SCREENSHOT_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(1500)  # let Gradio's pending-state fade finish
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="module")
def app_url(seed_index, seed_settings, tmp_path_factory):
    from rag.index import PaperIndex
    from ui.app import launch

    root = tmp_path_factory.mktemp("ui-app")
    shutil.copytree(seed_settings.index, root / "index")
    settings = make_settings(
        root, llm="extractive", host="127.0.0.1", port=free_port(), llm_max_retries=0,
        llm_timeout_s=5.0, llm_first_token_s=5.0,
        allow_custom_endpoints=True, allow_private_endpoints=True,  # stubs are on loopback
    )  # fmt: skip
    app = launch(settings, ingest_bundled=False, block=False, index=PaperIndex(settings))
    yield f"http://127.0.0.1:{settings.port}/"
    app.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app_url)
    yield page
    context.close()


def ask(page: Page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def choose_mode(page: Page, mode: str) -> None:
    page.get_by_role("combobox", name="Mode", exact=True).click()
    page.get_by_role("option", name=mode, exact=True).click()


def use_endpoint(page: Page, url: str) -> None:
    """Type an own endpoint, model and key in the Settings tab (the operator allows it here)."""
    endpoint = page.get_by_role("combobox", name="Endpoint (openai mode)")
    endpoint.fill(url)
    endpoint.press("Enter")
    model = page.get_by_role("combobox", name="Model (openai mode)")
    model.fill("stub")
    model.press("Enter")
    page.get_by_role("textbox", name="Your own API key").fill("sk-test")


def test_answer_has_chips_that_highlight_their_source_card(page):
    ask(page, QUESTION)
    chips = page.locator("#chat a.cite-chip")
    expect(chips.first).to_be_visible()
    expect(page.locator("#answer-status")).to_contain_text("answered by")
    chip = chips.first
    turn, n = chip.get_attribute("data-turn"), chip.get_attribute("data-cite")
    assert turn == "0"
    chip.click()
    card = page.locator(f"#sources-panel #src-{turn}-{n}")
    expect(card).to_have_class("source-card highlight")
    expect(card).to_be_in_viewport()
    assert page.locator("#sources-panel .source-card.highlight").count() == 1
    screenshot(page, "chat")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("#copy-answer").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "References" in copied and "<" not in copied and f"[{n}]" in copied


def test_follow_up_keeps_each_turns_sources_reachable(page):
    ask(page, QUESTION)
    expect(page.locator("#chat a.cite-chip[data-turn='0']").first).to_be_visible()
    ask(page, "Which papers propose datasets for scene text recognition in Indian languages?")
    expect(page.locator("#chat a.cite-chip[data-turn='1']").first).to_be_visible()
    expect(page.locator(".turn-sources[data-turn='0']")).to_be_hidden()
    first_turn_chip = page.locator("#chat a.cite-chip[data-turn='0']").first
    first_turn_chip.click()
    n = first_turn_chip.get_attribute("data-cite")
    expect(page.locator(".turn-sources[data-turn='0']")).to_be_visible()
    expect(page.locator(f"#src-0-{n}")).to_have_class("source-card highlight")
    page.locator("#new-chat").click()
    expect(page.locator("#chat a.cite-chip")).to_have_count(0)
    expect(page.locator("#sources-panel")).to_contain_text("Sources of the answer appear here")


@pytest.fixture(scope="module")
def short_memory_url(seed_index, seed_settings, tmp_path_factory):
    """An app whose sessions keep one full result: a second answer drops the first's."""
    from rag.index import PaperIndex
    from ui.app import launch

    root = tmp_path_factory.mktemp("ui-short-memory")
    shutil.copytree(seed_settings.index, root / "index")
    settings = make_settings(
        root, llm="extractive", host="127.0.0.1", port=free_port(), ui_session_turns=1
    )
    app = launch(settings, ingest_bundled=False, block=False, index=PaperIndex(settings))
    yield f"http://127.0.0.1:{settings.port}/"
    app.close()


def test_a_chip_of_an_answer_the_session_no_longer_keeps_points_to_the_export(
    browser, short_memory_url
):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(short_memory_url)
    try:
        ask(page, QUESTION)
        expect(page.locator("#chat a.cite-chip[data-turn='0']").first).to_be_visible()
        ask(page, "Which papers propose datasets for scene text recognition in Indian languages?")
        expect(page.locator("#chat a.cite-chip[data-turn='1']").first).to_be_visible()
        expect(page.locator(".turn-sources[data-turn='0']")).to_have_count(0)
        page.locator("#chat a.cite-chip[data-turn='0']").first.click()  # still in the chat
        expect(page.locator(".turn-sources[data-turn='older']")).to_be_visible()
        expect(page.locator(".turn-sources[data-turn='older']")).to_contain_text(
            "Export conversation"
        )
        page.locator("#chat a.cite-chip[data-turn='1']").first.click()
        expect(page.locator(".turn-sources[data-turn='1']")).to_be_visible()
        expect(page.locator(".turn-sources[data-turn='older']")).to_be_hidden()
    finally:
        context.close()


class StubLLM(BaseHTTPRequestHandler):
    """OpenAI-compatible streaming endpoint that holds its last delta until the test releases it."""

    first, last = "Quantile models are combined ", "by weighted ensembles [1]."
    release = threading.Event()
    requests: list[dict] = []
    authorizations: list[str] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubLLM.requests.append(body)
        StubLLM.authorizations.append(self.headers.get("Authorization", ""))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for text in (self.first, self.last):
            if text is self.last:
                StubLLM.release.wait(60)
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "stub",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_llm():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    StubLLM.release.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    StubLLM.release.set()
    server.shutdown()


def test_llm_answer_streams_then_shows_chips_and_the_prompt_sent(page, stub_llm):
    open_tab(page, "Settings")
    choose_mode(page, "openai")
    use_endpoint(page, stub_llm)
    page.get_by_label("Show the prompt actually sent (power users)").check()
    open_tab(page, "Chat")
    ask(page, QUESTION)
    expect(page.locator("#chat")).to_contain_text(StubLLM.first.strip())  # partial answer shown
    expect(page.locator("#chat a.cite-chip")).to_have_count(0)
    StubLLM.release.set()
    expect(page.locator("#chat a.cite-chip")).to_have_count(1)
    expect(page.locator("#chat")).to_contain_text("by weighted ensembles")
    expect(page.locator("#answer-status")).to_contain_text("openai:")
    page.get_by_role("button", name="Prompt actually sent").click()
    sent = StubLLM.requests[-1]["messages"]
    expect(page.locator("#prompt-json")).to_contain_text(sent[0]["content"][:40])
    expect(page.locator("#prompt-json")).to_contain_text(QUESTION)
    assert StubLLM.authorizations[-1] == "Bearer sk-test"  # the user's own key, nothing else


def test_llm_down_is_a_friendly_message_and_the_app_keeps_answering(page):
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    open_tab(page, "Settings")
    choose_mode(page, "openai")
    use_endpoint(page, f"http://127.0.0.1:{dead}/v1")
    open_tab(page, "Chat")
    ask(page, QUESTION)
    expect(page.locator("#chat")).to_contain_text("language model is not available", timeout=90_000)
    open_tab(page, "Settings")
    choose_mode(page, "extractive")
    open_tab(page, "Chat")
    ask(page, QUESTION)
    expect(page.locator("#chat a.cite-chip").first).to_be_visible()


def table_cells(page: Page, text: str):
    return page.locator("#paper-table [data-testid^='cell-']").filter(has_text=text)


def test_upload_jsonl_then_find_and_delete_the_paper(page, tmp_path):
    title = "Gradient Descent for Origami Folding Schedules"
    upload = tmp_path / "new-papers.jsonl"
    upload.write_text(
        json.dumps({"id": "2501.99999", "title": title, "abstract": "We fold paper with SGD.",
                    "authors": "A. Folder", "update_date": "2025-01-02", "categories": "cs.LG"})
        + "\n",
        encoding="utf-8",
    )  # fmt: skip
    open_tab(page, "Corpus")
    expect(page.locator("#corpus-stats")).to_contain_text("papers")
    page.locator("#upload input[type=file]").set_input_files(str(upload))
    page.locator("#ingest").click()
    expect(page.locator("#ingest-report")).to_contain_text("added 1", timeout=120_000)
    page.locator("#paper-search input, #paper-search textarea").first.fill("origami")
    page.locator("#paper-search input, #paper-search textarea").first.press("Enter")
    row = table_cells(page, title).first
    expect(row).to_be_visible()
    screenshot(page, "corpus")
    row.click()
    expect(page.locator("#selected-paper textarea, #selected-paper input").first).to_have_value(
        "2501.99999"
    )
    page.locator("#delete").click()
    expect(page.locator("#delete-question")).to_contain_text(title)  # asks before deleting
    page.locator("#delete-confirm").click()
    expect(page.locator("#ingest-report")).to_contain_text("deleted 2501.99999")
    expect(table_cells(page, title)).to_have_count(0)


def test_bad_upload_is_refused_with_a_reason(page, tmp_path):
    bad = tmp_path / "slides.pptx"
    bad.write_bytes(b"PK\x03\x04 not a paper")
    open_tab(page, "Corpus")
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.locator("#ingest").click()
    expect(page.locator("#ingest-report")).to_contain_text("slides.pptx: unsupported type")


def test_settings_tab_renders(page):
    open_tab(page, "Settings")
    expect(page.get_by_label("Papers per answer (top-k)").first).to_be_visible()
    screenshot(page, "settings")


def test_eval_tab_runs_a_small_suite_and_shows_metrics_and_plots(page):
    open_tab(page, "Eval")
    page.get_by_role("combobox", name="Suite (eval/suites)").click()
    page.get_by_role("option", name="ci_small.jsonl", exact=True).click()
    page.get_by_label("Retrieval only (fast: no answers generated)").check()
    page.locator("#run-eval").click()
    from eval.loaders import load_gold_suite
    from rag.settings import PROJECT_ROOT

    rows = len(load_gold_suite(PROJECT_ROOT / "eval" / "suites" / "ci_small.jsonl"))  # chain turns
    expect(page.locator("#eval-status")).to_contain_text(
        f"ci_small.jsonl: {rows} questions", timeout=300_000
    )
    metrics = page.locator("#eval-metrics [data-testid^='cell-']")
    expect(metrics.filter(has_text="recall@10").first).to_be_visible()
    expect(page.locator("#eval-plots img").first).to_be_visible()
    screenshot(page, "eval", full_page=True)


def test_two_sessions_at_once_keep_their_own_chats(browser, app_url, page):
    other_context = browser.new_context()
    other = other_context.new_page()
    other.goto(app_url)
    second = "Which papers propose datasets for scene text recognition in Indian languages?"
    ask(page, QUESTION)
    ask(other, second)
    expect(page.locator("#chat a.cite-chip").first).to_be_visible()
    expect(other.locator("#chat a.cite-chip").first).to_be_visible()
    expect(page.locator("#chat")).not_to_contain_text(second)
    expect(other.locator("#chat")).not_to_contain_text(QUESTION)
    assert page.locator("#chat a.cite-chip[data-turn='1']").count() == 0
    other_context.close()


def turn_citations(page: Page, turn: int) -> set[str]:
    chips = page.locator(f"#chat a.cite-chip[data-turn='{turn}']")
    expect(chips.first).to_be_visible()
    return {chips.nth(i).get_attribute("data-cite") for i in range(chips.count())}


def cited_titles(page: Page, turn: int) -> str:
    return page.locator(f".turn-sources[data-turn='{turn}'] .source-card .source-title").all_inner_texts()


def test_comparison_cites_both_papers_and_marks_quotes(page):
    ask(page, "Compare LAION-5B and DataComp.")
    assert turn_citations(page, 0) == {"1", "2"}
    titles = " ".join(cited_titles(page, 0))
    assert "LAION-5B" in titles and "DataComp" in titles
    answer = page.locator("#chat .answer[data-turn='0']")
    expect(answer).to_contain_text("LAION-5B:")
    expect(answer.locator(".quote-mark").first).to_contain_text("quote from [")
    expect(page.locator("#sources-panel")).not_to_contain_text("support 1.00")


def test_follow_up_chain_then_a_new_topic_starts_clean(page):
    ask(page, "How many image-text pairs does LAION-5B contain?")
    turn_citations(page, 0)
    assert "LAION-5B" in " ".join(cited_titles(page, 0))
    ask(page, "What about DataComp?")  # ellipsis: the new item, the earlier question's aspect
    turn_citations(page, 1)
    assert "DataComp" in " ".join(cited_titles(page, 1))
    expect(page.locator("#answer-status")).to_contain_text("searched for “DataComp")
    ask(page, "What about its limitations?")  # the paper does not say: said so, not repeated
    expect(page.locator("#chat .answer[data-turn='2']")).to_contain_text("do not say anything about")
    ask(page, "How can quantile regression models be aggregated?")  # a new topic
    turn_citations(page, 3)
    assert "Quantile" in " ".join(cited_titles(page, 3))
    expect(page.locator("#answer-status")).to_contain_text("answered by")
    expect(page.locator("#answer-status")).not_to_contain_text("searched for")


def test_uploaded_pdf_body_fact_is_cited_with_its_page(page, tmp_path):
    from tests.test_pdf import BODY_QUESTION, make_paper_pdf

    open_tab(page, "Corpus")
    upload = make_paper_pdf(tmp_path / "glimmerfish.pdf")
    page.locator("#upload input[type=file]").set_input_files(str(upload))
    page.locator("#ingest").click()
    expect(page.locator("#ingest-report")).to_contain_text("added 1", timeout=120_000)
    open_tab(page, "Chat")
    ask(page, BODY_QUESTION)
    assert turn_citations(page, 0)
    answer = page.locator("#chat .answer[data-turn='0']")
    expect(answer).to_contain_text("417 epochs")  # the fact only page 3 states
    assert "p. 3" in (answer.locator(".quote-mark").first.get_attribute("title") or "")
    card = page.locator(".turn-sources[data-turn='0'] .source-card").filter(
        has_text="Glimmerfish Sonar Mapping"
    )
    expect(card.locator(".passage-location").first).to_contain_text("p. 3")


def test_open_a_cited_pdf_at_its_page_with_the_passage_highlighted(page, tmp_path):
    from tests.test_pdf import BODY_QUESTION, TITLE, make_paper_pdf

    open_tab(page, "Corpus")
    upload = make_paper_pdf(tmp_path / "glimmerfish.pdf")
    page.locator("#upload input[type=file]").set_input_files(str(upload))
    page.locator("#ingest").click()
    expect(page.locator("#ingest-report")).to_contain_text(  # added now, or by the test above
        re.compile(r"added 1|skipped 1 duplicate"), timeout=120_000
    )
    open_tab(page, "Chat")
    ask(page, BODY_QUESTION)
    assert turn_citations(page, 0)
    card = page.locator(".turn-sources[data-turn='0'] .source-card").filter(has_text=TITLE)
    button = card.get_by_role("button", name="Open PDF at p. 3")
    viewer, header = page.locator("#pdf-viewer"), page.locator("#pdf-header")
    expect(viewer).to_be_hidden()
    button.focus()
    page.keyboard.press("Enter")  # keyboard-reachable: a focused button, Enter opens
    expect(viewer).to_be_visible()
    expect(header).to_contain_text("p. 3 of 3")
    expect(header).to_contain_text("cited passage highlighted")
    expect(page.locator("#pdf-page img")).to_have_attribute("alt", f"page 3 of {TITLE}")
    expect(page.locator("#pdf-page .pdf-highlight").first).to_be_visible()
    expect(page.locator("#pdf-next")).to_be_focused()  # focus moved into the viewer
    screenshot(page, "pdf-viewer")
    page.locator("#pdf-prev").click()
    expect(header).to_contain_text("p. 2 of 3")
    expect(header).to_contain_text("the cited passage is on p. 3")
    expect(page.locator("#pdf-page .pdf-highlight")).to_have_count(0)
    page.locator("#pdf-next").click()
    expect(header).to_contain_text("p. 3 of 3")
    expect(page.locator("#pdf-page .pdf-highlight").first).to_be_visible()
    number = page.locator("#pdf-page-number input")
    number.fill("1")
    number.press("Enter")
    expect(header).to_contain_text("p. 1 of 3")
    with page.expect_download() as download:
        page.locator("#pdf-download").click()
    assert Path(download.value.path()).read_bytes() == upload.read_bytes()
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    button.click()  # the mouse works too, and the page is the cited one again
    expect(header).to_contain_text("p. 3 of 3")
    page.locator("#pdf-close").click()
    expect(viewer).to_be_hidden()
