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
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from rag.answer.citations import MARKER, marker_numbers
from rag.answer.evidence import covered_aspects, split_sentences
from rag.answer.question import Question
from rag.lexical import stems

EmbedBatch = Callable[[list[str]], list[list[float]]]
WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = ENGLISH_STOP_WORDS | {"does", "did", "paper", "papers", "method", "methods"}


@dataclass
class SentenceSupport:
    """One answer sentence with its citations and the best evidence for it."""

    text: str  # as shown, markers included
    citations: list[int]  # source numbers (as in the final answer) cited by this sentence
    support: float | None  # None when the sentence cites nothing
    evidence: str  # best-supporting sentence of a cited source ("" when none)
    evidence_source: int | None  # which cited source the evidence comes from
    supported: bool  # cited, and support >= the calibrated threshold
    quote: bool = False  # the sentence quotes its evidence verbatim (framing aside)
    location: str = ""  # where the evidence is in its paper: "abstract", "p. 7", ...
    covers: list[str] = field(default_factory=list)  # question words the evidence contains
    answers: float | None = None  # share of the question's aspects the evidence covers


class SharedVectors:
    """Text vectors shared by every answer over one embedder: a bounded, thread-safe LRU.

    Answers keep quoting the same papers, and embedding their sentences is nearly all of
    an extractive answer's time, so each sentence is embedded once per process (until
    `capacity` other texts have pushed it out). Keyed by text: one cache per embedder.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
            return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        with self._lock:
            self._vectors[text] = vector
            self._vectors.move_to_end(text)
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)


_SHARED: OrderedDict[int, tuple[object, SharedVectors]] = OrderedDict()
_SHARED_EMBEDDERS = 4  # embedders (indexes) whose caches are kept at once
_SHARED_LOCK = threading.Lock()


def shared_vectors(embedder: object, capacity: int) -> SharedVectors:
    """The process-wide cache of `embedder`'s vectors (the embedder is kept alive with it,
    so its id cannot be reused while the entry exists)."""
    with _SHARED_LOCK:
        entry = _SHARED.get(id(embedder))
        if entry is None or entry[0] is not embedder:
            entry = (embedder, SharedVectors(capacity))
            _SHARED[id(embedder)] = entry
            while len(_SHARED) > _SHARED_EMBEDDERS:
                _SHARED.popitem(last=False)
        _SHARED.move_to_end(id(embedder))
        return entry[1]


class CachedEmbedder:
    """Embeds each distinct text once per answer (extractive scoring and the support check
    read the same sentences), and once per process when given the `shared` cache."""

    def __init__(self, embed_batch: EmbedBatch, shared: SharedVectors | None = None):
        self._embed_batch = embed_batch
        self._shared = shared
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        wanted = [text for text in dict.fromkeys(texts) if text not in self._cache]
        if self._shared is not None:
            for text in wanted:
                vector = self._shared.get(text)
                if vector is not None:
                    self._cache[text] = vector
        missing = [text for text in wanted if text not in self._cache]
        if missing:
            for text, vector in zip(missing, self._embed_batch(missing)):
                self._cache[text] = np.asarray(vector, dtype=np.float32)
                if self._shared is not None:
                    self._shared.put(text, self._cache[text])
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


def _squash(text: str) -> str:
    return " ".join(strip_markers(text).lower().split()).rstrip(".!?;: ")


def is_quote(claim: str, evidence: str) -> bool:
    """The claim is the evidence sentence, verbatim, with at most a framing label before it
    ("LAION-5B: ...", a paper's short title in a list)."""
    sentence, quoted = _squash(claim), _squash(evidence)
    return bool(quoted) and sentence.endswith(quoted) and len(sentence) - len(quoted) <= 80


def support_sentences(
    answer: str, documents: Sequence[Sequence[tuple[str, str]]], embed: EmbedBatch,
    min_support: float, question: Question | None = None,
) -> list[SentenceSupport]:  # fmt: skip
    """Score every sentence of `answer` against the sources it cites.

    `documents[n - 1]` holds the (sentence, location) evidence of source [n] as
    numbered in `answer` (abstract and matched body passages); citations outside
    that range are ignored (validation has removed them). With `question`, each
    sentence also says which of the question's aspects its evidence covers: what
    the reader sees as "answers this part of the question".
    """
    sentences = answer_sentences(answer)
    pools = {
        n: list(documents[n - 1])
        for _, numbers in sentences
        for n in numbers
        if 1 <= n <= len(documents) and documents[n - 1]
    }
    claims = [strip_markers(text) for text, _ in sentences]
    evidence_texts = list(dict.fromkeys(text for pool in pools.values() for text, _ in pool))
    vectors = embed(claims + evidence_texts) if evidence_texts else []
    claim_vectors = vectors[: len(claims)]
    evidence_vectors = dict(zip(evidence_texts, vectors[len(claims) :]))
    result = []
    for (text, numbers), claim, claim_vector in zip(
        sentences, claims, claim_vectors or [None] * len(claims)
    ):
        best: tuple[float, str, int | None, str] = (0.0, "", None, "")
        for n in numbers:
            for candidate, location in pools.get(n, []):
                if is_quote(claim, candidate):
                    score = 1.0
                else:
                    cosine = float(np.dot(claim_vector, evidence_vectors[candidate]))
                    score = max(cosine, lexical_support(claim, candidate))
                if score > best[0]:
                    best = (score, candidate, n, location)
        score, evidence, source, location = best
        cited = bool(numbers) and source is not None
        covered = covered_aspects(question, evidence or claim) if question else set()
        result.append(
            SentenceSupport(
                text=text, citations=numbers,
                support=round(score, 3) if cited else None,
                evidence=evidence, evidence_source=source,
                supported=cited and score >= min_support,
                quote=cited and is_quote(claim, evidence), location=location,
                covers=[word for word in (question.aspect_words if question else ())
                        if set(stems(word)) & covered],
                answers=round(len(covered) / len(question.aspects), 2)
                if question and question.aspects and cited else None,
            )  # fmt: skip
        )
    return result
