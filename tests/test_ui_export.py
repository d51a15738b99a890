"""The chat's export panel without a browser: files written for the last answer or all of them."""

from __future__ import annotations

import json
from pathlib import Path

import bibtexparser

from rag.answer import Answerer
from ui.chat import ChatTurns
from ui.export import ExportPanel, export_filename

QUESTION = "How can quantile regression models be aggregated?"


def test_panel_writes_the_last_answer_or_the_conversation(seed_index, seed_settings):
    answerer = Answerer(seed_index, seed_settings.model_copy(update={"llm": "extractive"}))
    first = answerer.ask(QUESTION)
    second = answerer.ask("Which papers propose datasets for scene text recognition?")
    panel = ExportPanel(seed_settings, seed_index)
    both = ChatTurns((first, second), 2)
    path, message = panel.export(both, "BibTeX", "apa", whole=False)
    titles = {entry["title"] for entry in bibtexparser.parse_string(Path(path).read_text()).entries}
    assert titles == {s.title for s in second.sources if s.cited}
    assert Path(path).name == "which-papers-propose-datasets-for-scene.bib"
    assert message.startswith("BibTeX: 1 answer(s)")
    path, _ = panel.export(both, "CSL-JSON", "apa", whole=True)
    ids = {item["id"] for item in json.loads(Path(path).read_text())}
    assert ids == {s.paper_id for r in (first, second) for s in r.sources if s.cited}
    path, _ = panel.export(both, "Markdown", "ieee", whole=True)
    text = Path(path).read_text()
    assert text.startswith(f"# {QUESTION}") and text.count("**References**") == 2


def test_nothing_to_export_and_bad_style_are_messages(seed_index, seed_settings):
    panel = ExportPanel(seed_settings, seed_index)
    assert panel.export(ChatTurns(), "Markdown", "apa", whole=True) == (
        None, "Ask a question first: there is nothing to export yet."
    )
    answer = Answerer(seed_index, seed_settings.model_copy(update={"llm": "extractive"})).ask(QUESTION)
    path, message = panel.export(ChatTurns((answer,), 1), "Markdown", "no-such-style", whole=False)
    assert path is None and message.startswith("**Problem:** unknown citation style")
    assert export_filename("", "ris", True) == "conversation-answer.ris"


def test_conversation_export_takes_the_turns_a_session_dropped_from_the_store(
    seed_index, seed_settings
):
    answerer = Answerer(seed_index, seed_settings.model_copy(update={"llm": "extractive"}))
    first = answerer.ask(QUESTION)
    second = answerer.ask("Which papers propose datasets for scene text recognition?")
    panel = ExportPanel(seed_settings, seed_index)
    latest_only = ChatTurns((second,), 2)  # the session keeps one full result of two turns
    path, message = panel.export(latest_only, "Markdown", "ieee", True, saved=[first, second])
    text = Path(path).read_text()
    assert text.startswith(f"# {QUESTION}") and text.count("**References**") == 2
    assert message.startswith("Markdown: 2 answer(s),")
    _, message = panel.export(latest_only, "Markdown", "ieee", True)  # nothing stored
    assert message.startswith("Markdown: 1 answer(s) (the 1 earliest were not saved),")
