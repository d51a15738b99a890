"""Extractive composition: quotes with markers, deterministic framing, nothing invented."""

from __future__ import annotations

from rag.answer.compose import cite_sentence, compose
from rag.answer.evidence import EvidenceUnit, Selection
from rag.answer.question import analyse
from rag.prompts import SENTINEL


def test_cite_sentence_puts_marker_before_final_punctuation():
    assert cite_sentence("It works.", "[2]") == "It works [2]."
    assert cite_sentence("Does it?", "[1]") == "Does it [1]?"
    assert cite_sentence("No stop", "[3, p. 7]") == "No stop [3, p. 7]"


def test_nothing_selected_abstains():
    assert compose(analyse("What is X?"), Selection([])) == (SENTINEL, True)


def test_plain_answer_is_the_quotes_in_order():
    units = [EvidenceUnit("A holds.", 1), EvidenceUnit("B holds on page 7.", 2, page=7)]
    assert compose(analyse("What holds?"), Selection(units)) == ("A holds [1]. B holds on page 7 [2, p. 7].", False)


def test_comparison_is_framed_per_side_and_names_the_missing_one():
    a, b = EvidenceUnit("LAION-5B has 5.85B pairs.", 1), EvidenceUnit("DataComp is a benchmark.", 2)
    question = analyse("Compare LAION-5B, DataComp and Chinchilla.")
    text, abstained = compose(
        analyse("Compare LAION-5B and DataComp."),
        Selection([a, b], [("LAION-5B", [a]), ("DataComp", [b])], ["Chinchilla"]),
    )
    assert not abstained and question.kind == "comparison"
    assert text == ("LAION-5B: LAION-5B has 5.85B pairs [1]. DataComp: DataComp is a benchmark [2]. "
                    "The indexed papers do not cover Chinchilla.")  # fmt: skip


def test_list_is_framed_per_paper():
    a, b = EvidenceUnit("We propose A.", 1), EvidenceUnit("We propose B.", 2)
    text, _ = compose(analyse("Which papers propose datasets?"),
                      Selection([a, b], [("Paper A", [a]), ("Paper B", [b])]))  # fmt: skip
    assert text == "Paper A: We propose A [1]. Paper B: We propose B [2]."
