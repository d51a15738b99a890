"""Evidence units and their selection: which located sentences answer the question.

Every retrieved paper is a set of sentences: those of its abstract, and those of
the body passages retrieval matched (`Source.passages`, with a page/section
location). Each sentence is an `EvidenceUnit`, scored by cosine to the question.
Selection is query-focused summarisation, not "the closest three":

- relevance = cosine + `answer_aspect_weight` x the share of the question's aspects
  (stemmed content words, rag/answer/question.py) the sentence contains, plus a
  bonus for numbers when the question asks for a quantity;
- greedy MMR: each next sentence adds relevance and not-yet-covered aspects and
  pays for similarity to what is already picked, until `answer_max_words`;
- lists get one best sentence per relevant paper; comparisons the best sentences
  about each named item, from the papers that mention it; a question naming an
  item ("How does TokenUnify ...") is answered from the papers that mention it.

Only papers retrieval ranks near the top are quoted (`citable_sources`), except
in comparisons, where each side's papers were retrieved for that side.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer

from rag.answer.question import Question
from rag.lexical import stems
from rag.retrieve import Source
from rag.settings import Settings

MIN_SENTENCE_CHARS = 25
MIN_EVIDENCE_WORDS = 6  # shorter "sentences" are headings, captions or link lines
NOT_PROSE = re.compile(
    r"https?://|www\.|\bgithub\.com\b|^\W*(?:code|data|project page)\b.*(?:available|at)\b"
    r"|^\W*(?:index terms|key ?words)\s*(?::|—|–|\s-\s)",  # an abstract's closing keyword line
    re.I,
)
ENUMERATING = re.compile(r"(?:[^,]+,){2,}|\b(?:such as|including|namely|e\.g\.|i\.e\.)|:\s", re.I)
DEFINING = re.compile(r"\b(?:we (?:present|introduce|propose|release|build|construct)|is an?|are|consists? of|comprises?)\b", re.I)
NUMBER = re.compile(r"\d")
QUANTITY = re.compile(r"\d[\d.,]*\s*(?:%|x\b|×|times|[kKMBT]\b|million|billion|thousand|"
                      r"percent|points?|hours?|days?|GB|TB|tokens|parameters|params|layers)")  # fmt: skip


@lru_cache(maxsize=1)
def _splitter():
    return split_by_sentence_tokenizer()


SPLIT_CACHE = 4096
"""Passages whose sentence split each process keeps (~2.5 KB each): answers keep quoting the
same abstracts, and Punkt was ~7 % of the UI server's CPU under load (docs/BENCHMARKS.md,
"UI under load")."""


@lru_cache(maxsize=SPLIT_CACHE)
def split_sentences(text: str) -> tuple[str, ...]:
    """Sentences of a passage; fragments cut at abbreviations rejoin their sentence."""
    sentences: list[str] = []
    for piece in _splitter()(" ".join(text.split())):
        piece = piece.strip()
        if sentences and len(piece) < MIN_SENTENCE_CHARS:
            sentences[-1] = f"{sentences[-1]} {piece}"
        elif piece:
            sentences.append(piece)
    return tuple(sentences)


@dataclass
class EvidenceUnit:
    """One located sentence of a retrieved paper."""

    text: str
    source_number: int  # 1-based position in the sources list
    score: float = 0.0  # cosine to the question
    location: str = "abstract"  # "abstract", "p. 7", "§ Results, p. 7"
    page: int | None = None
    position: int = 0  # reading order within its paper
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def marker(self) -> str:
        return f"[{self.source_number}, p. {self.page}]" if self.page else f"[{self.source_number}]"


def is_prose(sentence: str) -> bool:
    """A sentence that can answer something: not a link line, heading or caption stub."""
    return len(sentence.split()) >= MIN_EVIDENCE_WORDS and not NOT_PROSE.search(sentence)


def source_units(number: int, source: Source, max_passages: int) -> list[EvidenceUnit]:
    """The abstract's sentences, then those of the best `max_passages` body passages."""
    located: list[tuple[str, str, int | None]] = [
        (sentence, "abstract", None) for sentence in split_sentences(source.paper.abstract)
    ]
    for passage in source.passages[:max_passages]:
        located.extend((s, passage.location, passage.page) for s in split_sentences(passage.text))
    return [
        EvidenceUnit(text, number, location=location, page=page, position=position)
        for position, (text, location, page) in enumerate(
            item for item in located if is_prose(item[0])
        )
    ]


def source_text(source: Source, max_passages: int) -> str:
    """Everything of a paper the answer stage reads: title, abstract, matched passages."""
    passages = " ".join(passage.text for passage in source.passages[:max_passages])
    return f"{source.paper.title} {source.paper.abstract} {passages}"


def score_units(
    question_embedding: Sequence[float], sources: Sequence[Source], embed_batch,
    max_passages: int = 4,
) -> list[EvidenceUnit]:  # fmt: skip
    """Every sentence of every source (abstract and matched body passages), scored by
    cosine to the question."""
    units = [
        unit
        for number, source in enumerate(sources, start=1)
        for unit in source_units(number, source, max_passages)
    ]
    if not units:
        return []
    vectors = np.asarray(embed_batch([unit.text for unit in units]), dtype=np.float32)
    scores = vectors @ np.asarray(question_embedding, dtype=np.float32)
    for unit, vector, score in zip(units, vectors, scores):
        unit.vector, unit.score = vector, float(score)
    return units


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


def covered_aspects(question: Question, text: str) -> set[str]:
    """The question's aspects (stems) that `text` contains."""
    return set(question.aspects) & set(stems(text))


def relevance(unit: EvidenceUnit, question: Question, settings: Settings) -> float:
    """Cosine, plus aspect coverage, plus bonuses: numbers for quantity questions, enumerating
    sentences for "which datasets", naming the asked item, and saying what a thing is
    ("we propose X, a ...") for definitions."""
    coverage = len(covered_aspects(question, unit.text)) / len(question.aspects) if question.aspects else 0.0
    bonus = 0.0
    if question.wants_numbers and NUMBER.search(unit.text):
        bonus = settings.answer_number_bonus * (2 if QUANTITY.search(unit.text) else 1)
    if question.wants_enumeration and ENUMERATING.search(unit.text):
        bonus += settings.answer_list_bonus
    if question.entities and any(mentions(unit.text, entity) for entity in question.entities):
        bonus += settings.answer_entity_bonus
    if question.kind == "definition" and DEFINING.search(unit.text):
        bonus += settings.answer_definition_bonus
    return unit.score + settings.answer_aspect_weight * coverage + bonus


SHORT_NAME = 4  # a name this short ("Go", "T5") must stand as a word, not inside one


def mentions(text: str, entity: str) -> bool:
    """Whether `text` names `entity` (case, hyphens and spacing ignored; a short name must
    be a word of its own: "Go" is not named by "algorithm")."""
    def squash(value: str) -> str:
        return re.sub(r"[\s\-–_]+", "", value.lower())

    name = squash(entity)
    if len(name) <= SHORT_NAME:
        return re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", text.lower()) is not None
    return name in squash(text)


def _similarity(a: EvidenceUnit, b: EvidenceUnit) -> float:
    if a.vector is None or b.vector is None:
        return float(a.text == b.text)
    return float(np.dot(a.vector, b.vector))


def mmr(
    candidates: Sequence[EvidenceUnit], question: Question, settings: Settings, max_words: int,
    max_sentences: int, per_source: int = 2,
) -> list[EvidenceUnit]:  # fmt: skip
    """Greedy selection: relevance + new aspects covered - redundancy with the picked."""
    pool = list(candidates)
    base = {id(unit): relevance(unit, question, settings) for unit in pool}
    picked: list[EvidenceUnit] = []
    covered: set[str] = set()
    words = 0
    per: dict[int, int] = {}
    while pool and len(picked) < max_sentences:

        def gain(unit: EvidenceUnit) -> float:
            new = len(covered_aspects(question, unit.text) - covered)
            share = new / len(question.aspects) if question.aspects else 0.0
            redundancy = max((_similarity(unit, other) for other in picked), default=0.0)
            return base[id(unit)] + settings.answer_aspect_weight * share \
                - settings.answer_redundancy * redundancy  # fmt: skip

        best = max(pool, key=gain)
        pool.remove(best)
        if per.get(best.source_number, 0) >= per_source:
            continue
        length = len(best.text.split())
        if picked and words + length > max_words:
            continue
        if picked and base[id(best)] < base[id(picked[0])] - settings.answer_margin:
            break
        picked.append(best)
        covered |= covered_aspects(question, best.text)
        per[best.source_number] = per.get(best.source_number, 0) + 1
        words += length
    return picked


@dataclass
class Selection:
    """The evidence an answer is composed from."""

    units: list[EvidenceUnit]
    groups: list[tuple[str, list[EvidenceUnit]]] = field(default_factory=list)
    """Comparisons: (entity, its evidence) per named item; lists: (short title, unit)."""
    missing: list[str] = field(default_factory=list)  # named items no source mentions


def select_evidence(
    question: Question, units: Sequence[EvidenceUnit], sources: Sequence[Source],
    settings: Settings, floor: float, about: dict[str, set[int]] | None = None,
) -> Selection:  # fmt: skip
    """Pick the evidence for `question` (empty when nothing reaches the sentence floor).

    `about[item]` are source numbers retrieval found for a comparison's item on its own
    (a described side, "the gradual-pruning study", is named by no paper verbatim).
    """
    max_passages = settings.evidence_max_passages
    if question.kind == "comparison" and question.multi_entity:
        return _select_comparison(question, units, sources, settings, max_passages, about or {})
    citable = citable_sources(sources, settings.cite_min_score_share)
    names = question.entities or ((question.subject,) if question.subject else ())
    about = {
        number for number, source in enumerate(sources, start=1)
        if any(mentions(source_text(source, max_passages), name) for name in names)
    }  # fmt: skip
    citable = (citable & about) or citable  # a question naming an item is answered from its papers
    eligible = [unit for unit in units if unit.source_number in citable]
    if not eligible or max(unit.score for unit in eligible) < floor:
        return Selection([])
    if question.kind == "list":
        return _select_list(question, eligible, sources, settings)
    picked = mmr(eligible, question, settings, settings.answer_max_words,
                 settings.extractive_sentences)  # fmt: skip
    return Selection(reading_order(picked))


def reading_order(picked: Sequence[EvidenceUnit]) -> list[EvidenceUnit]:
    """Group by paper (in order of the paper's first pick), each paper's sentences in
    the order the paper has them."""
    papers = list(dict.fromkeys(unit.source_number for unit in picked))
    return sorted(picked, key=lambda unit: (papers.index(unit.source_number), unit.position))


def _select_list(
    question: Question, units: Sequence[EvidenceUnit], sources: Sequence[Source],
    settings: Settings,
) -> Selection:  # fmt: skip
    """One best sentence per relevant paper, papers in retrieval order."""
    best: dict[int, EvidenceUnit] = {}
    for unit in units:
        current = best.get(unit.source_number)
        if current is None or relevance(unit, question, settings) > relevance(current, question, settings):
            best[unit.source_number] = unit
    top = max(relevance(unit, question, settings) for unit in best.values())
    chosen = [
        best[number] for number in sorted(best)
        if relevance(best[number], question, settings) >= top - settings.answer_list_margin
    ][: settings.answer_list_items]  # fmt: skip
    return Selection(chosen, [(short_title(sources[u.source_number - 1].paper.title), [u]) for u in chosen])


def _select_comparison(
    question: Question, units: Sequence[EvidenceUnit], sources: Sequence[Source],
    settings: Settings, max_passages: int, about_side: dict[str, set[int]],
) -> Selection:  # fmt: skip
    """For each named item, the best sentences of the paper about it (its title names it),
    else of the papers that mention it or that its own retrieval found; items no paper
    covers are reported as missing."""
    budget = max(settings.answer_max_words // len(question.entities), 20)
    groups: list[tuple[str, list[EvidenceUnit]]] = []
    missing: list[str] = []
    used: set[str] = set()
    for entity in question.entities:
        about = {
            number for number, source in enumerate(sources, start=1)
            if mentions(source_text(source, max_passages), entity)
        } | about_side.get(entity, set())  # fmt: skip
        pool = [unit for unit in units if unit.source_number in about and unit.text not in used]
        if not pool:
            missing.append(entity)
            continue
        titled = [unit for unit in pool if mentions(sources[unit.source_number - 1].paper.title, entity)]
        focus = titled or pool  # the paper *about* the item, else any paper naming it
        side = dataclasses.replace(question, entities=(entity,))
        if not question.aspects:  # "Compare X and Y": say what each one is (copies: the
            focus = [  # units are shared with other sides and with calibration re-runs)
                dataclasses.replace(
                    unit, score=unit.score + settings.answer_entity_bonus * bool(DEFINING.search(unit.text))
                )
                for unit in focus
            ]
        picked = reading_order(mmr(focus, side, settings, budget, 2, per_source=2))
        used.update(unit.text for unit in picked)
        groups.append((entity, picked))
    return Selection([unit for _, group in groups for unit in group], groups, missing)


def short_title(title: str) -> str:
    """A paper's name as a list label: the part before a colon, else its first words."""
    head = title.split(":")[0].strip()
    words = head.split()
    return head if len(words) <= 8 else " ".join(words[:8]) + " …"
