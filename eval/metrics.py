"""Metric functions: retrieval, citations, abstention, answer correctness, latency, CIs.

Pure functions over plain values so each one can be checked against numbers
computed by hand (tests/test_eval_metrics.py).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
from rouge_score import rouge_scorer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from rag.answer.citations import MARKER
from rag.lexical import STEMMER, tokenize

NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")
ARTICLES = re.compile(r"\b(a|an|the)\b")
LOCATED_MARKER = re.compile(r"\s?\[\d+,\s*(?:p|pp|§)[^\]]{0,60}\]")  # [2, p. 7], [1, § Results]
STEMMED_STOPWORDS = frozenset(STEMMER.stemWords(sorted(ENGLISH_STOP_WORDS)))


# --- retrieval (paper level) -----------------------------------------------------


Relevant = Sequence[str] | Mapping[str, int]


def recall_at_k(ranked: Sequence[str], relevant: Relevant, k: int) -> float:
    """Share of the relevant papers found in the top k."""
    wanted = set(relevant)
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Relevant, k: int) -> float:
    """1 / rank of the first relevant paper within the top k, else 0."""
    wanted = set(relevant)
    return next((1.0 / rank for rank, doc in enumerate(ranked[:k], 1) if doc in wanted), 0.0)


def _discount(position: int) -> float:
    return 1.0 / math.log2(position + 1)


def ndcg_at_k(
    ranked: Sequence[str], grades: Mapping[str, int], k: int,
    scores: Sequence[float] | None = None,
) -> float:  # fmt: skip
    """nDCG@k with linear graded gains (as trec_eval / BEIR).

    With `scores`, papers with equal scores are a tie whose order is arbitrary:
    each position of a tied group gets the group's mean gain, the expected DCG
    over all orders of the tie (McSherry & Najork, 2008). Without scores the
    ranking is taken as strict.
    """
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    idcg = sum(gain * _discount(pos) for pos, gain in enumerate(ideal, 1))
    if idcg == 0:
        return 0.0
    gains = [float(grades.get(doc, 0)) for doc in ranked]
    keys = list(scores) if scores is not None else list(range(len(ranked)))
    dcg, start = 0.0, 0
    while start < len(ranked) and start < k:
        end = start
        while end + 1 < len(ranked) and keys[end + 1] == keys[start]:
            end += 1
        mean_gain = sum(gains[start : end + 1]) / (end - start + 1)
        dcg += mean_gain * sum(_discount(pos) for pos in range(start + 1, min(end + 1, k) + 1))
        start = end + 1
    return dcg / idcg


# --- citations and abstention ----------------------------------------------------------


def citation_precision(cited: Sequence[str], gold: Sequence[str]) -> float | None:
    """Share of cited papers that are gold; None when nothing was cited (undefined)."""
    cited_set = set(cited)
    return len(cited_set & set(gold)) / len(cited_set) if cited_set else None


def citation_recall(cited: Sequence[str], gold: Sequence[str]) -> float | None:
    """Share of gold papers that were cited; None for questions without gold."""
    gold_set = set(gold)
    return len(gold_set & set(cited)) / len(gold_set) if gold_set else None


# --- answer correctness ----------------------------------------------------------------


def strip_markers(text: str) -> str:
    """Answer text without [n] / [n, p. 7] citation markers (they are not part of the claim)."""
    return MARKER.sub(" ", LOCATED_MARKER.sub(" ", text))


def _tokens(text: str) -> list[str]:
    """SQuAD normalisation: lower case, no punctuation, no articles."""
    text = strip_markers(text).lower()
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    return ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 between an answer and the reference (SQuAD style)."""
    pred, ref = _tokens(prediction), _tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence), via Google's rouge-score."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    return _rouge().score(reference, strip_markers(prediction))["rougeL"].fmeasure


def numbers_in(text: str) -> set[float]:
    """Numbers written in a text: '117,702' -> 117702.0, '83.0%' -> 83.0, '2.32B' -> 2.32."""
    found = set()
    for match in NUMBER.findall(strip_markers(text)):
        try:
            found.add(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def numeric_match(prediction: str, reference: str) -> float | None:
    """Share of the reference's numbers that the answer states; None if it has none."""
    wanted = numbers_in(reference)
    if not wanted:
        return None
    return len(wanted & numbers_in(prediction)) / len(wanted)


def content_units(text: str) -> set[str]:
    """What a reference answer asserts, as comparable units: the stemmed content words
    (the BM25 tokenizer of rag/lexical.py, minus English stop words, so "models" meets
    "model") and the numbers, normalised ("2.5x", "2.5" and "2.5 times" are all 2.5;
    "40%" is 40; "27,000" is 27000). Tokens starting with a digit ("5x", "12b") are left
    to the number side, so a unit suffix never decides a match."""
    plain = strip_markers(text)
    (tokens,) = tokenize([plain])
    words = {t for t in tokens if not t[0].isdigit() and t not in STEMMED_STOPWORDS}
    return words | {f"#{value:g}" for value in numbers_in(plain)}


def answer_recall(prediction: str, reference: str) -> float | None:
    """Answer-content recall: the share of the reference's content units (words and
    numbers, see `content_units`) that the answer contains; None when the reference
    has none (no reference answer written). Length is not penalised here: report it
    beside (`answer_words`), since a dumped abstract would score well on recall alone."""
    wanted = content_units(reference)
    if not wanted:
        return None
    return len(wanted & content_units(prediction)) / len(wanted)


MULTI_PAPER_TYPES = {"multi", "comparison", "list"}


def multi_paper(row: dict) -> bool:
    """A multi-paper question as issue 10 groups them: a multi-paper, comparison or list
    question whose gold names two or more papers (reported as the "multi-paper" group)."""
    return row.get("type") in MULTI_PAPER_TYPES and len(row.get("gold") or ()) >= 2


def answer_words(text: str) -> int:
    """Length of an answer in words, citation markers not counted."""
    return sum(any(ch.isalnum() for ch in word) for word in strip_markers(text).split())


# --- aggregation ----------------------------------------------------------------------------


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the defined values; None when none is defined."""
    defined = [v for v in values if v is not None]
    return float(sum(defined) / len(defined)) if defined else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), None for no values."""
    return float(np.percentile(values, q)) if len(values) else None


def paired_bootstrap(
    current: Sequence[float], previous: Sequence[float], resamples: int = 2000,
    confidence: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:  # fmt: skip
    """Mean paired difference (current - previous) and its percentile bootstrap CI.

    Questions are resampled with replacement and both runs keep the same draw,
    so per-question difficulty cancels out (Koehn, 2004; Efron & Tibshirani).
    """
    if len(current) != len(previous) or not current:
        raise ValueError("paired bootstrap needs two equally long, non-empty score lists")
    diffs = np.asarray(current, dtype=float) - np.asarray(previous, dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[draws].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diffs.mean()), float(low), float(high)
