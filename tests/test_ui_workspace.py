"""The research workspace in real Chromium: saved conversations per login, export, reference imports.

One app with two logins (alice, bob) over a private copy of the bundled-corpus
index, extractive answers. Set UI_SCREENSHOT_DIR to keep screenshots of the
new views (docs/screenshots/).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import bibtexparser
import pytest

from tests.conftest import make_settings
from tests.test_ui_browser import (  # noqa: F401  (browser: the shared module fixture)
    QUESTION, ask, browser, free_port, open_tab, screenshot,
)  # fmt: skip

from playwright.sync_api import Page, expect  # noqa: E402  (after the skip above)

SECOND = "Which papers propose datasets for scene text recognition in Indian languages?"
USERS = [("alice", "alice-pw"), ("bob", "bob-pw")]


@pytest.fixture(scope="module")
def app_url(seed_index, seed_settings, tmp_path_factory):
    from rag.index import PaperIndex
    from ui.app import launch

    root = tmp_path_factory.mktemp("ui-workspace")
    shutil.copytree(seed_settings.index, root / "index")
    settings = make_settings(root, llm="extractive", host="127.0.0.1", port=free_port())
    app = launch(settings, users=USERS, ingest_bundled=False, block=False, index=PaperIndex(settings))
    yield f"http://127.0.0.1:{settings.port}/"
    app.close()


@pytest.fixture
def login(browser, app_url):
    """login(user) → a page of a fresh browser context logged in as that user."""
    contexts = []

    def open_as(user: str) -> Page:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        password = dict(USERS)[user]
        response = context.request.post(f"{app_url}login", form={"username": user, "password": password})
        assert response.ok
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(app_url)
        expect(page.locator("#question textarea")).to_be_visible()
        return page

    yield open_as
    for context in contexts:
        context.close()


def history(page: Page):
    return page.locator("#history-list")


def answered(page: Page, turn: int = 0) -> None:
    expect(page.locator(f"#chat a.cite-chip[data-turn='{turn}']").first).to_be_visible()


def test_reload_brings_the_conversation_back_and_the_list_reopens_it(login):
    page = login("alice")
    ask(page, QUESTION)
    answered(page)
    ask(page, SECOND)
    answered(page, 1)
    expect(history(page)).to_contain_text(QUESTION)
    page.reload()
    answered(page, 1)
    expect(page.locator("#chat")).to_contain_text(QUESTION)
    expect(page.locator("#chat")).to_contain_text(SECOND)
    expect(page.locator("#answer-status")).to_contain_text("reopened")
    screenshot(page, "history")
    page.locator("#new-chat").click()
    expect(page.locator("#chat a.cite-chip")).to_have_count(0)
    page.reload()
    expect(page.locator("#question textarea")).to_be_visible()
    expect(page.locator("#chat a.cite-chip")).to_have_count(0)  # a new chat stays new
    history(page).get_by_text(QUESTION).first.click()
    answered(page, 1)
    expect(page.locator("#chat")).to_contain_text(SECOND)


def test_two_users_never_see_each_others_conversations(login):
    alice, bob = login("alice"), login("bob")
    ask(alice, "How can quantile regression models be aggregated for alice?")
    ask(bob, "Which datasets exist for Indian scene text, asks bob?")
    answered(alice)
    answered(bob)
    expect(history(alice)).to_contain_text("for alice")
    expect(history(bob)).to_contain_text("asks bob")
    bob.reload()
    expect(history(bob)).to_contain_text("asks bob")
    expect(history(bob)).not_to_contain_text("alice")
    expect(history(alice)).not_to_contain_text("bob")
    bob.locator("#history-search input, #history-search textarea").first.fill("quantile")
    expect(history(bob)).not_to_contain_text("quantile")


def test_rename_and_delete_with_confirmation(login):
    page = login("bob")
    ask(page, "How can quantile regression models be aggregated, to rename?")
    answered(page)
    history(page).get_by_text("to rename?").first.click()
    page.locator("#history-title textarea, #history-title input").first.fill("Quantile notes")
    page.locator("#history-rename").click()
    expect(history(page)).to_contain_text("Quantile notes")
    history(page).get_by_text("Quantile notes").first.click()
    page.locator("#history-delete").click()
    expect(page.locator("#history-confirm")).to_be_visible()
    page.locator("#history-cancel").click()
    expect(history(page)).to_contain_text("Quantile notes")
    history(page).get_by_text("Quantile notes").first.click()
    page.locator("#history-delete").click()
    page.locator("#history-confirm").click()
    expect(history(page)).not_to_contain_text("Quantile notes")
    expect(page.locator("#chat a.cite-chip")).to_have_count(0)  # it was the open one


def download(page: Page, button: str, fmt: str) -> str:
    page.locator("#export-format input").first.click()
    page.get_by_role("option", name=fmt, exact=True).click()
    page.locator(button).click()
    link = page.locator("#export-file a").first
    expect(link).to_be_visible()
    with page.expect_download() as info:
        link.click()
    return Path(info.value.path()).read_text(encoding="utf-8")


def test_export_answer_to_bibtex_and_conversation_to_markdown(login):
    page = login("alice")
    ask(page, QUESTION)
    answered(page)
    page.locator("#export-panel button").first.click()  # the accordion header
    bib = download(page, "#export-answer", "BibTeX")
    entries = bibtexparser.parse_string(bib).entries
    cited = page.locator("#sources-panel .turn-sources:not([hidden]) .source-card .source-title")
    expect(cited.first).to_be_visible()
    assert entries and len(entries) == cited.count()
    assert all(entry["title"] in cited.all_inner_texts()[i] for i, entry in enumerate(entries))
    expect(page.locator("#export-message")).to_contain_text("1 answer(s)")
    screenshot(page, "export")
    ask(page, SECOND)
    answered(page, 1)
    markdown = download(page, "#export-conversation", "Markdown")
    assert markdown.startswith(f"# {QUESTION}") and f"## {SECOND}" in markdown
    assert markdown.count("**References**") == 2


def test_import_bib_and_ris_then_find_their_papers(login, tmp_path):
    bib = tmp_path / "library.bib"
    bib.write_text(
        "@article{k1, title = {Beekeeping Robots for Urban Rooftops}, author = {Hive, Harriet},\n"
        " year = {2024}, doi = {10.4242/bees.1},\n"
        " abstract = {We build robots that tend beehives on city rooftops.}}\n",
        encoding="utf-8",
    )
    ris = tmp_path / "export.ris"
    ris.write_text(
        "TY  - JOUR\nAU  - Sailor, Sam\nTI  - Tidal Energy Forecasting with Harbour Sensors\n"
        "AB  - Harbour sensors forecast tidal energy output a day ahead.\nPY  - 2022\n"
        "DO  - 10.4242/tide.2\nER  - \n",
        encoding="utf-8",
    )
    page = login("alice")
    open_tab(page, "Corpus")
    page.locator("#upload input[type=file]").set_input_files([str(bib), str(ris)])
    page.locator("#ingest").click()
    expect(page.locator("#ingest-report")).to_contain_text("added 2", timeout=120_000)
    search = page.locator("#paper-search input, #paper-search textarea").first
    for text, author in (("Beekeeping Robots", "Harriet Hive"), ("Tidal Energy", "Sam Sailor")):
        search.fill(text)
        search.press("Enter")
        table = page.locator("#paper-table")
        expect(table).to_contain_text(text)
        expect(table).to_contain_text(author)
    screenshot(page, "corpus-import")
    open_tab(page, "Chat")
    ask(page, "How do robots tend beehives on city rooftops?")
    expect(page.locator("#sources-panel")).to_contain_text("Beekeeping Robots for Urban Rooftops")
    expect(page.locator("#sources-panel")).to_contain_text("10.4242/bees.1")


def test_year_filter_warns_that_undated_papers_are_left_out(login):
    page = login("bob")
    open_tab(page, "Settings")
    page.get_by_label("Year from").fill("2020")
    page.get_by_label("Year from").press("Tab")
    open_tab(page, "Chat")
    notice = page.locator("#filter-notice")
    expect(notice).to_contain_text("⚠")  # the bundled pages are undated: few papers remain
    expect(notice).to_contain_text("without a known year are left out by the year filter")
    open_tab(page, "Settings")
    page.get_by_label("Year from").fill("")
    page.get_by_label("Year from").press("Tab")
    open_tab(page, "Chat")
    expect(notice).not_to_contain_text("Filters")


def test_also_retrieved_papers_expand_to_their_abstract(login):
    page = login("bob")
    ask(page, QUESTION)
    answered(page)
    uncited = page.locator("#sources-panel .turn-sources:not([hidden]) ul.uncited details").first
    expect(uncited).to_be_visible()
    abstract = uncited.locator(".source-abstract")
    expect(abstract).to_be_hidden()
    uncited.locator("summary").click()
    expect(abstract).to_be_visible()
    screenshot(page, "also-retrieved")


def test_corpus_table_pages_and_sorts(login):
    page = login("bob")
    open_tab(page, "Corpus")
    info = page.locator("#paper-page-info")
    expect(info).to_contain_text("rows 1–50 of")
    page.locator("#next-page").click()
    expect(info).to_contain_text("rows 51–100 of")
    page.locator("#paper-sort input").first.click()
    page.get_by_role("option", name="title A–Z", exact=True).click()
    expect(info).to_contain_text("rows 1–50 of")
    first = page.locator("#paper-table [data-testid='cell-0-1']").first
    expect(first).to_be_visible()
    screenshot(page, "corpus-table")
