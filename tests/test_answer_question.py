"""Question analysis: kinds, named items, aspects, follow-ups (pure functions)."""

from __future__ import annotations

import pytest

from rag.answer.question import analyse, comparison_sides, continues, followup_query, named_items


@pytest.mark.parametrize(
    ("question", "kind", "entities"),
    [("Compare LAION-5B and DataComp.", "comparison", ("LAION-5B", "DataComp")),
     ("How do DataComp and DFN differ?", "comparison", ("DataComp", "DFN")),
     ("What is the difference between dropout and batch normalization?", "comparison",
      ("dropout", "batch normalization")),
     ("GPT-4 vs Llama 2 on reasoning?", "comparison", ("GPT-4", "Llama 2")),
     ("Which papers propose datasets for scene text recognition?", "list", ()),
     ("How many image-text pairs does LAION-5B contain?", "quantity", ("LAION-5B",)),
     ("What is population based training?", "definition", ()),
     ("Does adding gradient noise help optimise very deep networks?", "yesno", ()),
     ("How does TokenUnify combine token prediction objectives?", "open", ("TokenUnify",))],
)  # fmt: skip
def test_kinds_and_named_items(question, kind, entities):
    analysis = analyse(question)
    assert analysis.kind == kind and analysis.entities == entities


@pytest.mark.parametrize(
    ("question", "subject"),
    [("What is split computing?", "split computing"),
     ("What are neural circuit diagrams?", "neural circuit diagram"),
     ("What is a hypernetwork?", "hypernetwork"),
     ("What is loss?", "loss"),
     ("How does TokenUnify combine token prediction objectives?", "")],
)  # fmt: skip
def test_a_definition_names_its_subject_in_the_singular(question, subject):
    assert analyse(question).subject == subject


def test_quantity_questions_want_numbers_and_aspects_exclude_names_and_frame_words():
    analysis = analyse("How many image-text pairs does LAION-5B contain?")
    assert analysis.wants_numbers
    assert analysis.aspect_words == ("image-text", "pairs", "contain")


@pytest.mark.parametrize(
    "question", ["What about its limitations?", "And the speed?", "How does it scale?",
                 "What about DataComp?", "What does this method cost?",
                 "Which GPU were the experiments run on?"],
)  # fmt: skip
def test_follow_ups(question):
    assert analyse(question).followup


@pytest.mark.parametrize(
    "question", ["What is the lottery ticket hypothesis?",
                 "How can quantile regression models be aggregated?",
                 "Compare LAION-5B and DataComp."],
)  # fmt: skip
def test_standalone_questions_are_not_follow_ups(question):
    assert not analyse(question).followup


def test_named_items_skip_question_words_and_join_capitalised_runs():
    assert named_items("How does a Pointer Net use attention?") == ["Pointer Net"]
    assert named_items("What is ResNet50 and CLIP?") == ["ResNet50", "CLIP"]
    assert comparison_sides("Is it raining?") == []


def test_follow_up_query_carries_entities_not_the_earlier_question():
    previous = analyse("How large is LAION-5B?")
    query = followup_query(analyse("What about its limitations?"), ["LAION-5B"], previous)
    assert query == "What about its limitations? LAION-5B"
    ellipsis = followup_query(analyse("What about DataComp?"), ["LAION-5B"], previous)
    assert ellipsis == "DataComp large"
    assert "How large is" not in query + ellipsis


def test_a_question_reusing_the_earlier_turns_words_and_naming_nothing_continues_it():
    previous = analyse("What is prefer-to-classify?")
    titles = ["Prefer to Classify: Improving Text Classifiers via Auxiliary Preference Learning"]
    assert continues(analyse("Where do the preference signals come from?"), previous, titles)
    assert not continues(analyse("How are spiking networks trained?"), previous, titles)
    assert not continues(analyse("What preference data does DataComp use?"), previous, titles)
