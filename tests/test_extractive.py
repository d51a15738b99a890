"""The extractive answerer: closest sentences, cited, within a margin of the best."""

from __future__ import annotations

from rag.extractive import (
    ScoredSentence,
    citable_sources,
    cite_sentence,
    extractive_answer,
    split_sentences,
)
from rag.papers import Paper
from rag.prompts import SENTINEL
from rag.retrieve import Source


def scored(*items: tuple[str, int, float]) -> list[ScoredSentence]:
    return [ScoredSentence(text, number, score) for text, number, score in items]


def test_abstains_below_min_score():
    assert extractive_answer(scored(("Weak match.", 1, 0.3)), 3, 0.5, 0.1) == (SENTINEL, True)
    assert extractive_answer([], 3, 0.5, 0.1) == (SENTINEL, True)


def test_quotes_only_sentences_within_margin_of_best():
    text, abstained = extractive_answer(
        scored(("Best answer.", 2, 0.8), ("Close second.", 1, 0.77), ("Same topic only.", 3, 0.6)),
        max_sentences=3, min_score=0.5, margin=0.05,
    )  # fmt: skip
    assert not abstained
    assert text == "Best answer [2]. Close second [1]."


def test_caps_sentences_per_source_and_in_total():
    items = scored(*[(f"Sentence {i}.", 1, 0.9 - i / 100) for i in range(5)])
    text, _ = extractive_answer(items, max_sentences=3, min_score=0.5, margin=0.5, per_source=2)
    assert text == "Sentence 0 [1]. Sentence 1 [1]."


def test_cite_sentence_puts_marker_before_final_punctuation():
    assert cite_sentence("It works.", 2) == "It works [2]."
    assert cite_sentence("Does it?", 1) == "Does it [1]?"
    assert cite_sentence("No stop", 3) == "No stop [3]"


def test_split_sentences_rejoins_short_fragments():
    sentences = split_sentences("We propose X, e.g. a model. It improves accuracy by 5% on ImageNet.")
    assert sentences[-1] == "It improves accuracy by 5% on ImageNet."
    assert all(len(sentence) >= 25 for sentence in sentences)


def source(score: float) -> Source:
    return Source(paper=Paper(id=f"p{score}", title="t", abstract="a"), score=score, best_chunk="a")


def test_citable_sources_are_those_near_the_top_retrieval_score():
    sources = [source(2.0), source(1.6), source(1.4), source(0.3)]
    assert citable_sources(sources, 0.75) == {1, 2}
    assert citable_sources(sources, 0.0) == {1, 2, 3, 4}


def test_without_a_positive_top_score_every_source_is_citable():
    assert citable_sources([source(-1.0), source(-3.0)], 0.75) == {1, 2}


def test_a_close_sentence_in_a_low_ranked_paper_is_not_quoted(tmp_path):
    """The answer stage quotes only citable papers, even when another sentence is closer."""
    from conftest import make_settings

    from rag.answer import quote_sources

    sources = [source(2.0), source(0.6)]
    sentences = scored(("The top paper answers it.", 1, 0.60), ("A side remark.", 2, 0.66))
    strict = make_settings(tmp_path, cite_min_score_share=0.75, extractive_margin=0.1)
    text, abstained = quote_sources(sentences, sources, 0.47, strict)
    assert not abstained and text == "The top paper answers it [1]."
    loose = strict.model_copy(update={"cite_min_score_share": 0.0})
    assert "[2]" in quote_sources(sentences, sources, 0.47, loose)[0]
