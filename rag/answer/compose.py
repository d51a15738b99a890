"""Composition without an LLM: the selected sentences, quoted and cited, lightly framed.

The framing is deterministic and adds no facts: a comparison is "X: quote [1]
Y: quote [2]" (and "The indexed papers do not cover Z." for a side no paper
mentions); a list is "Title A: quote [1] Title B: quote [2]"; anything else is the
quotes in reading order. Every sentence is a sentence of a source, so the
answer cannot state what its citation does not.
"""

from __future__ import annotations

from rag.answer.evidence import EvidenceUnit, Selection
from rag.answer.question import Question
from rag.prompts import SENTINEL


def cite_sentence(sentence: str, marker: str) -> str:
    """Put the marker before the sentence's final punctuation: 'It works [2].'"""
    body = sentence.rstrip()
    if body and body[-1] in ".!?":
        return f"{body[:-1]} {marker}{body[-1]}"
    return f"{body} {marker}"


def quote(units: list[EvidenceUnit]) -> str:
    return " ".join(cite_sentence(unit.text, unit.marker) for unit in units)


def missing_sentence(missing: list[str]) -> str:
    names = " or ".join(missing)
    return f"The indexed papers do not cover {names}."


def compose(question: Question, selection: Selection) -> tuple[str, bool]:
    """(answer text with [n] markers, abstained)."""
    if not selection.units:
        return SENTINEL, True
    if question.kind == "comparison" and selection.groups:
        parts = [f"{label}: {quote(units)}" for label, units in selection.groups]
        if selection.missing:
            parts.append(missing_sentence(selection.missing))
        return " ".join(parts), False
    if question.kind == "list" and selection.groups:
        return " ".join(f"{label}: {quote(units)}" for label, units in selection.groups), False
    return quote(selection.units), False
