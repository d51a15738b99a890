"""Should the answer abstain? The evidence gates, run before any generation.

Dense retrieval always returns *something*, and on-domain questions the corpus
does not cover ("how well do CNNs grade diabetic retinopathy?") retrieve papers
whose sentences are as close to the question as a paraphrased question's
answer is. Cosine alone cannot tell them apart, so four signals are combined:

1. the best retrieved paper's dense cosine, and the share of the question's
   words the retrieved papers mention (cheap; checked before sentence scoring);
2. **absent key terms**: question words that no paper in the index contains.
   Generic words ("taught", "versus") are absent too, so a term counts only when
   it carries the question's meaning: deleting the absent words moves the
   question's embedding by at least `abstain_absent_term_shift`;
3. the best evidence sentence's cosine to the question (abstract and matched body
   passages: a long document's answer is often only in its body);
4. a retrieved *title* close to the question, or naming an item the question names
   ("What is kMaX-DeepLab?" names a paper whose sentences never restate the name).

`judge_evidence` is a pure function of the measured `Evidence` and the settings,
so bench/answers_bench.py re-judges one measurement under many thresholds.
Calibration: docs/answers.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.answer.evidence import EvidenceUnit, mentions, source_text
from rag.answer.question import QUESTION_WORDS
from rag.answer.support import CachedEmbedder, question_coverage
from rag.lexical import stems
from rag.retrieve import Source
from rag.settings import Settings


@dataclass
class Evidence:
    """The signals the gates look at, measured once per question."""

    best_similarity: float | None  # best paper's dense cosine; None for BM25-only retrieval
    coverage: float  # share of question content words found in the retrieved papers' text
    best_sentence: float = 0.0  # best evidence sentence's cosine to the question
    title_match: float = 0.0  # best retrieved title's cosine (measured only when consulted)
    absent_words: list[str] = field(default_factory=list)  # question words no paper contains
    absent_shift: float = 0.0  # 1 - cos(question, question without the absent words)
    named_found: bool = False  # a retrieved paper names an item the question names ("NCLaw")
    named_in_title: bool = False  # ... in its title ("What is ScaleKD?" and "ScaleKD: ...")


def retrieval_evidence(
    query: str, sources: Sequence[Source], max_passages: int = 4, entities: Sequence[str] = ()
) -> Evidence:
    """The cheap signals, available before any sentence is embedded (coverage counts the
    matched body passages too). `entities` are the question's named items."""
    similarities = [source.similarity for source in sources if source.similarity is not None]
    texts = [source_text(source, max_passages) for source in sources]
    return Evidence(
        best_similarity=max(similarities, default=None),
        coverage=question_coverage(query, texts),
        named_found=any(mentions(text, entity) for text in texts for entity in entities),
        named_in_title=any(
            mentions(source.paper.title, entity) for source in sources for entity in entities
        ),
    )


def absent_words(question: str, known: Callable[[str], bool]) -> list[str]:
    """Words of the question with a (stemmed) term that `known` says no paper contains;
    the words that frame a question ("Tell me about ...") are not what it is about."""
    return [
        word
        for word in question.split()
        if word.strip("?.,;:!\"'").lower() not in QUESTION_WORDS
        and any(not known(term) for term in stems(word))
    ]


def meaning_shift(question: str, removed: Sequence[str], embed: CachedEmbedder) -> float:
    """How far deleting `removed` words moves the question's embedding (0 = not at all)."""
    if not removed:
        return 0.0
    dropped = set(removed)
    rest = " ".join(word for word in question.split() if word not in dropped)
    if not rest:
        return 1.0  # every word is absent: all of the meaning goes with them
    whole, without = embed([question, rest])
    return float(1.0 - np.dot(whole, without))


def title_match(
    query_vector: Sequence[float], sources: Sequence[Source], embed: CachedEmbedder
) -> float:
    """Best cosine between the question and a retrieved paper's title."""
    titles = np.asarray(embed([source.paper.title for source in sources]))
    return float(np.max(titles @ np.asarray(query_vector, dtype=np.float32)))


def measure_evidence(
    evidence: Evidence,
    query: str,
    query_vector: Sequence[float],
    sources: Sequence[Source],
    scored: Sequence[EvidenceUnit],
    known: Callable[[str], bool],
    embed: CachedEmbedder,
    title_below: float,
) -> Evidence:
    """Fill in the sentence-level signals (after the sentences have been scored).

    The title match is consulted only when the best sentence is under the sentence
    floor, so it is measured (five title embeddings, ~20 ms) only when the best
    sentence is under `title_below`: the floor in use, or the highest one calibrated.
    """
    evidence.best_sentence = max((item.score for item in scored), default=0.0)
    if sources and evidence.best_sentence < title_below:
        evidence.title_match = title_match(query_vector, sources, embed)
    evidence.absent_words = absent_words(query, known)
    evidence.absent_shift = meaning_shift(query, evidence.absent_words, embed)
    return evidence


def judge_retrieval(evidence: Evidence, settings: Settings) -> str:
    """Why retrieval alone is too weak to answer from ("" when it is not)."""
    best = evidence.best_similarity
    # A bare name ("What is NCLaw?") embeds poorly, but a paper that names it is on topic.
    if best is not None and best < settings.abstain_min_retrieval and not evidence.named_found:
        return (f"best match scored {best:.2f}, below the abstention threshold "
                f"{settings.abstain_min_retrieval:.2f}: the sources are too weak to "
                "answer.")  # fmt: skip
    if evidence.coverage < settings.abstain_min_coverage:
        return (f"only {evidence.coverage:.0%} of the question's terms occur in the retrieved "
                f"papers (threshold {settings.abstain_min_coverage:.0%}): the sources do not "
                "cover it.")  # fmt: skip
    return ""


def judge_evidence(evidence: Evidence, settings: Settings) -> tuple[str, float]:
    """(why to abstain, or ""; the cosine a sentence needs to be quoted).

    Every gate's threshold is a setting (rag/settings.py), calibrated on
    bench/answers_dev.jsonl, never on the held-out gold suite.
    """
    weak = judge_retrieval(evidence, settings)
    if weak:
        return weak, 0.0
    best = evidence.best_sentence
    if (
        evidence.absent_shift >= settings.abstain_absent_term_shift
        and best < settings.absent_term_answer_score
    ):
        words = ", ".join(f"'{word.strip('?.,;:!')}'" for word in evidence.absent_words)
        return (f"no paper in the index mentions {words}, which the question is about: "
                "the sources do not answer it."), 0.0  # fmt: skip
    if best >= settings.extractive_min_score:
        return "", settings.extractive_min_score
    if evidence.title_match >= settings.abstain_title_match or evidence.named_in_title:
        return "", 0.0  # on topic by title: quote its closest sentences
    return (f"no source sentence is close to the question (best {best:.2f} < "
            f"{settings.extractive_min_score:.2f}): the sources do not answer it."), 0.0  # fmt: skip
