"""Render an AnswerResult for people: HTML for the chat UI (CLI prints plain text).

Citation markers become chips linking to the source cards (`#src-<n>`), so a
reader can jump from a claim to the paper that supports it.
"""

from __future__ import annotations

import html
import re

from rag.answer import AnswerResult, SourceRecord
from rag.citations import MARKER, marker_numbers


def answer_html(result: AnswerResult) -> str:
    """Answer text with each [n] turned into clickable citation chips."""

    def chip(match: re.Match) -> str:
        numbers = marker_numbers(match.group(1))
        return " " + "".join(
            f'<a class="cite-chip" href="#src-{n}" data-cite="{n}">{n}</a>' for n in numbers
        )

    escaped = html.escape(result.answer, quote=False)
    body = MARKER.sub(chip, escaped)
    notes = "".join(f'<div class="answer-note">{html.escape(note)}</div>' for note in result.notes)
    return f'<div class="answer">{body}</div>{notes}'


def source_card(source: SourceRecord) -> str:
    title = html.escape(source.title)
    link = (
        f'<a href="{html.escape(source.url)}" target="_blank" rel="noopener">{html.escape(source.paper_id)}</a>'
        if source.url
        else html.escape(source.paper_id)
    )
    meta = " · ".join(
        part for part in (str(source.year or ""), html.escape(source.authors[:160])) if part
    )
    return (
        f'<div class="source-card" id="src-{source.n}" data-n="{source.n}">'
        f'<div class="source-title"><span class="source-n">[{source.n}]</span> {title}</div>'
        f'<div class="source-meta">{link}{" · " + meta if meta else ""} · score {source.score:.3f}</div>'
        f'<div class="source-abstract">{html.escape(source.abstract)}</div></div>'
    )


def sources_html(result: AnswerResult) -> str:
    """Cited papers first as full cards; other retrieved papers listed below."""
    cited = [source for source in result.sources if source.cited]
    others = [source for source in result.sources if not source.cited]
    parts = ["<h4>Cited sources</h4>"] + [source_card(s) for s in cited] if cited else [
        "<p>No sources cited.</p>"
    ]
    if others:
        parts.append("<h4>Also retrieved</h4><ul class='uncited'>")
        parts.extend(
            f"<li>[{s.n}] {html.escape(s.title)} <small>({html.escape(s.paper_id)})</small></li>"
            for s in others
        )
        parts.append("</ul>")
    return "".join(parts)
