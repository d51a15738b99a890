"""Checks on a user's question before any work is done for it.

A question is embedded, searched, put into a prompt and echoed back; one of
20,000 characters costs all of that and floods the screen. Over the limit
(`max_question_chars`) it is refused with a message that quotes only its start.
"""

from __future__ import annotations

from rag.settings import Settings

SHOWN_CHARS = 120


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """The start of `text` for echoing: at most `limit` characters, marked when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def question_problem(question: str, settings: Settings) -> str | None:
    """Why this question is refused (one line), or None when it may be answered."""
    if len(question) > settings.max_question_chars:
        return (
            f"the question is {len(question):,} characters long; the limit is "
            f"{settings.max_question_chars:,} (max_question_chars). Ask something shorter: "
            f"“{shorten(question, 60)}”"
        )
    return None
