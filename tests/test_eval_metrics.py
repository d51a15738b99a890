"""Metric functions against values computed by hand."""

from __future__ import annotations

import math

import pytest

from eval.metrics import (
    answer_recall,
    answer_words,
    citation_precision,
    content_units,
    citation_recall,
    mean,
    mrr_at_k,
    ndcg_at_k,
    numbers_in,
    numeric_match,
    paired_bootstrap,
    percentile,
    recall_at_k,
    rouge_l,
    token_f1,
)

LOG2_3 = math.log2(3)


def test_recall_counts_the_share_of_relevant_papers_in_the_top_k():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, ["b", "d", "e"], 1) == 0.0
    assert recall_at_k(ranked, ["b", "d", "e"], 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, ["b", "d", "e"], 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, [], 5) == 0.0


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_paper_within_k():
    assert mrr_at_k(["a", "b", "c"], {"b": 1, "c": 2}, 10) == 0.5
    assert mrr_at_k(["a", "b", "c"], ["c"], 2) == 0.0


def test_ndcg_with_graded_qrels():
    # DCG@3 = 2/log2(2) + 0/log2(3) + 3/log2(4) = 3.5
    # IDCG@3 = 3 + 2/log2(3) + 1/2
    expected = 3.5 / (3 + 2 / LOG2_3 + 0.5)
    assert ndcg_at_k(["b", "x", "a", "c"], {"a": 3, "b": 2, "c": 1}, 3) == pytest.approx(expected)
    assert expected == pytest.approx(0.7350, abs=1e-4)


def test_ndcg_is_one_for_a_perfect_ranking_even_with_tied_grades():
    assert ndcg_at_k(["b", "a", "x"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], {"a": 1}, 10) == 0.0


def test_ndcg_tied_scores_share_their_positions_gains():
    # Strict order: the relevant paper sits at rank 2 -> 1/log2(3).
    assert ndcg_at_k(["a", "b"], {"b": 1}, 10) == pytest.approx(1 / LOG2_3)
    # Tied scores: each position gets the group's mean gain 0.5 -> 0.5 * (1 + 1/log2(3)),
    # whichever order the tie was listed in.
    tied = 0.5 * (1 + 1 / LOG2_3)
    assert ndcg_at_k(["a", "b"], {"b": 1}, 10, [0.9, 0.9]) == pytest.approx(tied)
    assert ndcg_at_k(["b", "a"], {"b": 1}, 10, [0.9, 0.9]) == pytest.approx(tied)


def test_ndcg_tie_across_the_cutoff_counts_only_positions_inside_it():
    # Group {a, b} fills ranks 2-3 with mean gain 1; only rank 2 is inside k=2.
    # DCG@2 = 1/log2(3); IDCG@2 = 2 (the single grade-2 paper at rank 1).
    value = ndcg_at_k(["x", "a", "b"], {"b": 2}, 2, [1.0, 0.5, 0.5])
    assert value == pytest.approx((1 / LOG2_3) / 2)


def test_citation_precision_and_recall():
    assert citation_precision(["a", "b", "c"], ["a", "d"]) == pytest.approx(1 / 3)
    assert citation_recall(["a", "b", "c"], ["a", "d"]) == 0.5
    assert citation_precision([], ["a"]) is None
    assert citation_recall(["a"], []) is None


def test_token_f1_ignores_case_punctuation_articles_and_markers():
    # pred tokens {cat, sat}, ref tokens {cat, sat, down}: P = 1, R = 2/3, F1 = 0.8
    assert token_f1("The cat sat [1].", "a cat sat down") == pytest.approx(0.8)
    assert token_f1("", "anything") == 0.0


def test_rouge_l_is_the_lcs_f_measure():
    # LCS(alpha beta gamma delta, alpha gamma delta epsilon) = 3 of 4 tokens each side.
    assert rouge_l("alpha beta gamma delta", "alpha gamma delta epsilon") == pytest.approx(0.75)
    assert rouge_l("   ", "alpha") == 0.0


def test_numbers_are_read_with_thousands_separators_and_units_but_not_markers():
    assert numbers_in("117,702 networks reach 83.0% and 2.32B pairs [3]") == {117702, 83, 2.32}
    assert numbers_in("IndicSTR12 has no standalone number") == set()


def test_numeric_match_is_the_share_of_reference_numbers_stated():
    assert numeric_match("21 objects and 19 attributes", "21 objects, 18 attributes") == 0.5
    assert numeric_match("83 percent", "83.0%") == 1.0
    assert numeric_match("anything", "no numbers here") is None


def test_mean_and_percentiles():
    assert mean([1.0, None, 0.0]) == 0.5
    assert mean([None]) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None


def test_paired_bootstrap_of_a_constant_difference_is_that_difference():
    assert paired_bootstrap([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], 200) == (1.0, 1.0, 1.0)


def test_paired_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    current = [0.9, 0.4, 0.7, 1.0, 0.2, 0.8]
    previous = [0.5, 0.5, 0.6, 0.7, 0.3, 0.4]
    delta, low, high = paired_bootstrap(current, previous, 2000, seed=1)
    assert delta == pytest.approx(sum(current) / 6 - sum(previous) / 6)
    assert low < delta < high
    assert paired_bootstrap(current, previous, 2000, seed=1) == (delta, low, high)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 2.0])


def test_answer_recall_counts_reference_content_words_and_numbers():
    reference = "LAION-5B has 5.85 billion CLIP-filtered image-text pairs."
    # units: laion, #5, #5.85, billion, clip, filter, imag, text, pair ("has" is a stop word)
    assert len(content_units(reference)) == 9
    answer = "LAION-5B: a dataset of 5.85 billion CLIP-filtered image-text pairs [1]."
    assert answer_recall(answer, reference) == 1.0
    # plural/singular and citation markers do not matter; the missing "billion" costs 1/9
    assert answer_recall("5.85 laion-5b clip filtering image text pair [2]", reference) == (
        pytest.approx(8 / 9)
    )
    assert answer_recall("Pointer Networks point at input positions [1].", reference) == 0.0


def test_answer_recall_fails_when_the_numbers_differ():
    reference = "It outperforms the strongest baseline by 12.9 mAP for COCO."
    right = "The optimized instructions outperform the strongest baseline by 12.9 mAP on COCO [1]."
    wrong = "The optimized instructions outperform the strongest baseline by 21.9 mAP on COCO [1]."
    assert answer_recall(right, reference) == 1.0
    assert answer_recall(wrong, reference) == pytest.approx(5 / 6)
    # a number hidden in a citation marker is not a stated number
    assert answer_recall("by 3 mAP [12]", "by 12 mAP") == 0.5


def test_answer_recall_normalises_number_forms():
    assert content_units("2.5x faster") == content_units("2.5 times faster") - {"time"}
    assert answer_recall("about 40 percent, 27000 images", "40% of 27,000 images") == 1.0
    assert answer_recall("a 0.4 share", "40%") == 0.0
    assert answer_recall("anything", "The [1]") is None  # nothing to recall: undefined


def test_answer_words_ignores_citation_markers():
    assert answer_words("Pointer Networks use attention as a pointer [1], [2, p. 7].") == 7
    assert answer_words("") == 0
