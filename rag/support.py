"""Support evidence: does the cited abstract actually say what the sentence claims?

A valid citation number only proves the paper was among the sources. For each
answer sentence we find the sentence of the cited abstract(s) that best
supports it and score that support, so readers (and the eval) can see which
claims are backed and which are not. The score is the larger of two signals:
cosine similarity under the bundled embedder (catches paraphrase) and lexical
recall of the claim's content words in the evidence (catches near-quotes the
small embedder under-rates).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from rag.citations import MARKER, marker_numbers
from rag.extractive import split_sentences

EmbedBatch = Callable[[list[str]], list[list[float]]]
WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = ENGLISH_STOP_WORDS | {"does", "did", "paper", "papers", "method", "methods"}


@dataclass
class SentenceSupport:
    """One answer sentence with its citations and the best evidence for it."""

    text: str  # as shown, markers included
    citations: list[int]  # source numbers (as in the final answer) cited by this sentence
    support: float | None  # None when the sentence cites nothing
    evidence: str  # best-supporting sentence of a cited abstract ("" when none)
    evidence_source: int | None  # which cited source the evidence comes from
    supported: bool  # cited, and support >= the calibrated threshold


class CachedEmbedder:
    """Embeds each distinct text once per answer: extractive scoring and the support
    check read the same abstract sentences, and embedding dominates their cost."""

    def __init__(self, embed_batch: EmbedBatch):
        self._embed_batch = embed_batch
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            for text, vector in zip(missing, self._embed_batch(missing)):
                self._cache[text] = np.asarray(vector, dtype=np.float32)
        return [self._cache[text] for text in texts]


def content_words(text: str) -> set[str]:
    return {word for word in WORD.findall(text.lower()) if word not in STOPWORDS and len(word) > 2}


def lexical_support(claim: str, evidence: str) -> float:
    """Share of the claim's content words that appear in the evidence."""
    words = content_words(claim)
    return len(words & content_words(evidence)) / len(words) if words else 0.0


def question_coverage(question: str, texts: Sequence[str]) -> float:
    """Share of the question's content words found anywhere in the retrieved papers.

    Dense retrieval always returns *something*; when the question names things no
    retrieved paper mentions (a model, a dataset, a place), the sources cannot
    answer it however close their vectors are. Used as an abstention signal.
    """
    return lexical_support(question, " ".join(texts))


def strip_markers(text: str) -> str:
    return " ".join(MARKER.sub("", text).split())


def answer_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence, cited numbers) for each sentence of an answer."""
    result = []
    for sentence in split_sentences(answer):
        numbers: list[int] = []
        for match in MARKER.finditer(sentence):
            numbers.extend(n for n in marker_numbers(match.group(1)) if n not in numbers)
        result.append((sentence, numbers))
    return result


def support_sentences(
    answer: str, abstracts: Sequence[str], embed: EmbedBatch, min_support: float
) -> list[SentenceSupport]:
    """Score every sentence of `answer` against the abstracts it cites.

    `abstracts[n - 1]` is the abstract of source [n] as numbered in `answer`;
    citations outside that range are ignored (validation has removed them).
    """
    sentences = answer_sentences(answer)
    pools = {
        n: split_sentences(abstracts[n - 1]) or [abstracts[n - 1]]
        for _, numbers in sentences
        for n in numbers
        if 1 <= n <= len(abstracts) and abstracts[n - 1].strip()
    }
    claims = [strip_markers(text) for text, _ in sentences]
    evidence_texts = [text for pool in pools.values() for text in pool]
    vectors = embed(claims + evidence_texts) if evidence_texts else []
    claim_vectors = vectors[: len(claims)]
    evidence_vectors = dict(zip(evidence_texts, vectors[len(claims) :]))
    result = []
    for (text, numbers), claim, claim_vector in zip(
        sentences, claims, claim_vectors or [None] * len(claims)
    ):
        best: tuple[float, str, int | None] = (0.0, "", None)
        for n in numbers:
            for candidate in pools.get(n, []):
                cosine = float(np.dot(claim_vector, evidence_vectors[candidate]))
                score = max(cosine, lexical_support(claim, candidate))
                if score > best[0]:
                    best = (score, candidate, n)
        score, evidence, source = best
        cited = bool(numbers) and source is not None
        result.append(
            SentenceSupport(
                text=text,
                citations=numbers,
                support=round(score, 3) if cited else None,
                evidence=evidence,
                evidence_source=source,
                supported=cited and score >= min_support,
            )
        )
    return result
