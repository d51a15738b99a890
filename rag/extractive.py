"""An answer with no LLM: the abstract sentences closest to the question, each cited.

It never invents a claim, so its citations are right by construction; it is the
fallback whenever a generative model fails to cite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer

from rag.prompts import SENTINEL
from rag.retrieve import Source

MIN_SENTENCE_CHARS = 25


@lru_cache(maxsize=1)
def _splitter():
    return split_by_sentence_tokenizer()


def split_sentences(text: str) -> list[str]:
    """Sentences of an abstract; fragments cut at abbreviations rejoin their sentence."""
    sentences: list[str] = []
    for piece in _splitter()(" ".join(text.split())):
        piece = piece.strip()
        if sentences and len(piece) < MIN_SENTENCE_CHARS:
            sentences[-1] = f"{sentences[-1]} {piece}"
        elif piece:
            sentences.append(piece)
    return sentences


@dataclass
class ScoredSentence:
    text: str
    source_number: int  # 1-based position in the sources list
    score: float


def score_sentences(
    question_embedding: Sequence[float], sources: Sequence[Source], embed_batch
) -> list[ScoredSentence]:
    """Every sentence of every source abstract, scored by cosine to the question."""
    candidates = [
        (number, sentence)
        for number, source in enumerate(sources, start=1)
        for sentence in split_sentences(source.paper.abstract)
    ]
    if not candidates:
        return []
    vectors = np.asarray(embed_batch([sentence for _, sentence in candidates]), dtype=np.float32)
    scores = vectors @ np.asarray(question_embedding, dtype=np.float32)
    return [
        ScoredSentence(text=sentence, source_number=number, score=float(score))
        for (number, sentence), score in zip(candidates, scores)
    ]


def citable_sources(sources: Sequence[Source], min_share: float) -> set[int]:
    """Source numbers whose retrieval score is at least `min_share` of the top one's.

    A sentence can sit close to the question in a paper that is merely on the
    same topic; retrieval, which scores the whole title and abstract (dense and
    BM25), ranks such papers well below the one that answers. Quoting only papers
    near the top score keeps those off the citation list (calibrated in
    docs/answers.md). Scores that are not positive (a cross-encoder's logits)
    give no scale to take a share of, so then every source is citable.
    """
    top = max((source.score for source in sources), default=0.0)
    return {
        number
        for number, source in enumerate(sources, start=1)
        if top <= 0 or source.score >= min_share * top
    }


def extractive_answer(
    scored: Sequence[ScoredSentence],
    max_sentences: int,
    min_score: float,
    margin: float,
    per_source: int = 2,
) -> tuple[str, bool]:
    """(answer text with [n] markers, abstained). Best sentences first, few per source.

    Only sentences within `margin` of the best one are quoted: a weaker sentence
    usually comes from a paper that is merely on the same topic, and citing it
    costs precision without adding an answer.
    """
    ranked = sorted(scored, key=lambda item: item.score, reverse=True)
    if not ranked or ranked[0].score < min_score:
        return SENTINEL, True
    floor = ranked[0].score - margin
    picked: list[ScoredSentence] = []
    per: dict[int, int] = {}
    for item in ranked:
        if len(picked) == max_sentences or item.score < floor:
            break
        if per.get(item.source_number, 0) < per_source:
            picked.append(item)
            per[item.source_number] = per.get(item.source_number, 0) + 1
    return " ".join(cite_sentence(item.text, item.source_number) for item in picked), False


def cite_sentence(sentence: str, number: int) -> str:
    """Put the marker before the sentence's final punctuation: 'It works [2].'"""
    body = sentence.rstrip()
    if body and body[-1] in ".!?":
        return f"{body[:-1]} [{number}]{body[-1]}"
    return f"{body} [{number}]"
