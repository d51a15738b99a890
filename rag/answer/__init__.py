"""The answer stage: from a question and retrieved papers to a cited, checked answer.

One module per step, run in this order by `Answerer` (rag/answer/answerer.py):

- question.py  — what the question asks for (kind, named items, aspects, follow-up);
- gates.py     — should it abstain? evidence gates before any generation;
- evidence.py  — located sentences (abstract and body passages) and their selection;
- compose.py   — the answer without an LLM: quoted, cited, lightly framed;
- generate.py  — the LLM prompt built from the selected evidence (extract, then generate);
- citations.py — parse, validate and renumber [n] / [n, p. 7] markers;
- support.py   — does the cited evidence state each sentence, and what of the question
                 does it answer?
"""

from rag.answer.answerer import (
    Answerer,
    AnswerResult,
    Citation,
    SentenceRecord,
    SourceRecord,
    Stage,
)

__all__ = ["AnswerResult", "Answerer", "Citation", "SentenceRecord", "SourceRecord", "Stage"]
