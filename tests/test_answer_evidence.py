"""Evidence units and their selection: located sentences, aspect coverage, MMR, lists, sides."""

from __future__ import annotations

import numpy as np
from conftest import make_settings

from rag.answer.evidence import (
    EvidenceUnit,
    citable_sources,
    mentions,
    select_evidence,
    short_title,
    source_units,
    split_sentences,
)
from rag.answer.question import analyse
from rag.papers import Paper, Passage
from rag.retrieve import Source


def source(score: float, title: str = "t", abstract: str = "a", passages=()) -> Source:
    return Source(paper=Paper(id=f"p{score}{title}", title=title, abstract=abstract), score=score,
                  best_chunk=abstract, passages=list(passages))  # fmt: skip


def unit(text: str, number: int, score: float, vector=None, position: int = 0) -> EvidenceUnit:
    return EvidenceUnit(text, number, score=score, position=position,
                        vector=None if vector is None else np.asarray(vector, dtype=np.float32))  # fmt: skip


def test_split_sentences_rejoins_short_fragments():
    sentences = split_sentences("We propose X, e.g. a model. It improves accuracy by 5% on ImageNet.")
    assert sentences[-1] == "It improves accuracy by 5% on ImageNet."
    assert all(len(sentence) >= 25 for sentence in sentences)


def test_units_cover_the_abstract_and_body_passages_with_their_location():
    body = Passage("The T-maze task needs memory over 50 steps. Agents solve it with a recurrent "
                   "network.", kind="body", page=7, section="Results")  # fmt: skip
    abstract = ("We study agents in a maze. Code is available at https://github.com/x/maze now. "
                "They remember things well over time.")
    units = source_units(2, source(1.0, abstract=abstract, passages=[body]), max_passages=4)
    assert [u.location for u in units] == ["abstract", "abstract", "§ Results, p. 7", "§ Results, p. 7"]
    assert units[2].marker == "[2, p. 7]" and units[0].marker == "[2]"
    assert [u.position for u in units] == [0, 1, 2, 3]
    keywords = "We study agents in a maze. Index Terms: reinforcement learning, memory, mazes"
    assert [u.text for u in source_units(1, source(1.0, abstract=keywords), 4)] == [
        "We study agents in a maze."
    ]  # a keyword line is no answer to anything


def test_citable_sources_are_those_near_the_top_retrieval_score():
    sources = [source(2.0), source(1.6), source(1.4), source(0.3)]
    assert citable_sources(sources, 0.75) == {1, 2}
    assert citable_sources(sources, 0.0) == {1, 2, 3, 4}
    assert citable_sources([source(-1.0), source(-3.0)], 0.75) == {1, 2}


def test_aspect_coverage_beats_a_slightly_closer_sentence(tmp_path):
    """The cosine-closest sentence restates the topic; the one naming the asked quantity wins."""
    settings = make_settings(tmp_path, answer_max_words=20)
    question = analyse("How many image-text pairs does the dataset contain?")
    units = [
        unit("We present a dataset for training image-text models at scale.", 1, 0.62, [1, 0]),
        unit("The dataset contains 5.85 billion image-text pairs.", 1, 0.58, [0, 1]),
    ]
    picked = select_evidence(question, units, [source(1.0)], settings, floor=0.47).units
    assert picked[0].text.startswith("The dataset contains 5.85 billion")


def test_redundant_sentences_are_not_both_quoted(tmp_path):
    settings = make_settings(tmp_path, answer_max_words=200)
    question = analyse("How is transformer memory compressed?")
    units = [
        unit("Transformer memory is compressed with sparse codes.", 1, 0.8, [1, 0], 0),
        unit("Sparse codes compress the memory of transformers.", 1, 0.79, [1, 0], 1),
        unit("Compression halves the inference memory of transformers.", 1, 0.75, [0, 1], 2),
    ]
    picked = select_evidence(question, units, [source(1.0)], settings, floor=0.47).units
    assert [u.position for u in picked] == [0, 2]


def test_nothing_is_selected_under_the_sentence_floor(tmp_path):
    settings = make_settings(tmp_path)
    units = [unit("A weakly related sentence about something.", 1, 0.3)]
    assert select_evidence(analyse("What is X?"), units, [source(1.0)], settings, 0.47).units == []


def test_a_list_question_gets_one_sentence_per_relevant_paper(tmp_path):
    settings = make_settings(tmp_path, cite_min_score_share=0.0)
    question = analyse("Which papers propose datasets for scene text recognition?")
    sources = [source(1.0, "IndicSTR12: A Dataset for Indian Scene Text Recognition"),
               source(0.9, "Telugu Scene Text"), source(0.8, "Unrelated Birds")]  # fmt: skip
    units = [
        unit("We propose a dataset for scene text recognition in 12 languages.", 1, 0.7),
        unit("The dataset is large and diverse for scene text.", 1, 0.69),
        unit("We release a Telugu scene text recognition dataset.", 2, 0.66),
        unit("Birds are counted in radar images.", 3, 0.2),
    ]
    selection = select_evidence(question, units, sources, settings, floor=0.47)
    assert [u.source_number for u in selection.units] == [1, 2]
    assert [label for label, _ in selection.groups] == ["IndicSTR12", "Telugu Scene Text"]


def test_a_comparison_quotes_each_side_from_the_papers_that_name_it(tmp_path):
    settings = make_settings(tmp_path)
    question = analyse("Compare LAION-5B and DataComp.")
    sources = [source(1.0, "LAION-5B: An open dataset", "LAION-5B has 5.85 billion pairs."),
               source(0.5, "DataComp: In search of the next generation of datasets",
                      "DataComp is a benchmark for dataset design.")]  # fmt: skip
    units = [unit("LAION-5B has 5.85 billion pairs.", 1, 0.5),
             unit("DataComp is a benchmark for dataset design.", 2, 0.4)]  # fmt: skip
    selection = select_evidence(question, units, sources, settings, floor=0.0)
    assert [(label, [u.source_number for u in group]) for label, group in selection.groups] == [
        ("LAION-5B", [1]), ("DataComp", [2])]  # fmt: skip
    assert selection.missing == []
    missing = select_evidence(analyse("Compare LAION-5B and Chinchilla."), units, sources, settings, 0.0)
    assert missing.missing == ["Chinchilla"]


def test_a_definition_is_answered_from_the_papers_that_use_the_term(tmp_path):
    settings = make_settings(tmp_path, cite_min_score_share=0.0, answer_max_words=200)
    sources = [source(1.0, "BottleFit", "Split computing generates compressed bottlenecks."),
               source(0.9, "Continual learning", "A baseline on 10-Split-CIFAR-100 computes fast.")]  # fmt: skip
    units = [unit("Split computing generates compressed bottlenecks.", 1, 0.7, [1, 0]),
             unit("A baseline on 10-Split-CIFAR-100 computes fast.", 2, 0.66, [0, 1])]  # fmt: skip
    picked = select_evidence(analyse("What is split computing?"), units, sources, settings, 0.47)
    assert [u.source_number for u in picked.units] == [1]
    unused = select_evidence(analyse("What is edge offloading?"), units, sources, settings, 0.47)
    assert [u.source_number for u in unused.units] == [1, 2]  # no paper uses the term: all may


def test_mentions_ignores_case_and_hyphens():
    assert mentions("the laion 5b dataset", "LAION-5B") and not mentions("LAION-400M", "LAION-5B")


def test_a_short_name_must_be_a_word_of_its_own():
    assert not mentions("a new search algorithm", "Go") and mentions("playing Go at master level", "Go")
    assert mentions("we fine-tune T5-base", "T5") and not mentions("the T50 model", "T5")


def test_short_title_is_the_name_before_the_colon():
    assert short_title("Pointer Networks") == "Pointer Networks"
    assert short_title("LAION-5B: An open large-scale dataset") == "LAION-5B"
