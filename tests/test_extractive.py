"""The extractive answerer: closest sentences, cited, within a margin of the best."""

from __future__ import annotations

from rag.extractive import ScoredSentence, cite_sentence, extractive_answer, split_sentences
from rag.prompts import SENTINEL


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
