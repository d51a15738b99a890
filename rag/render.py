"""Render an AnswerResult for people: HTML for the chat UI, plain text for copying.

Citation markers become chips linking to the source cards (`#src-<turn>-<n>`),
so a reader can jump from a claim to the paper that supports it. Cards carry
the turn number because a chat shows several answers whose sources are all
numbered from 1. When the answer carries per-sentence records (`sentences`),
each sentence is marked honestly: a verbatim quote says "quote from [n]" (a
quote trivially "supports" itself, so no score is shown), a generated sentence
gets a dot saying whether its cited evidence states it, and a generated sentence
without a citation is flagged. A source card's badge says which words of the
question its evidence answers; the evidence is highlighted in the abstract, or
shown with its location (p. 7) when it comes from the body. Sources whose paper
is a PDF on disk (the caller says which: `pdfs`, paper ids) get "Open PDF at p. N"
buttons for the pages their evidence is on; ui/pdfview.py opens them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rag.answer import AnswerResult, SourceRecord
from rag.answer.citations import MARKER, marker_numbers

SUPPORT_LEVELS = ((0.66, "high"), (0.33, "mid"), (0.0, "low"))
"""Support score → CSS level; thresholds split [0, 1] in thirds."""


@dataclass(frozen=True)
class SentenceSupport:
    """One answer sentence and how well the abstracts it cites support it."""

    text: str
    citations: list[int]
    support: float | None  # None: the sentence cites nothing, so there is nothing to check
    evidence: str
    evidence_source: int | None = None  # the source the evidence sentence comes from
    supported: bool | None = None  # the answer stage's verdict (its own threshold)
    quote: bool = False  # a verbatim quote of its evidence
    location: str = ""  # where the evidence is: "abstract", "p. 7"
    covers: tuple[str, ...] = ()  # question words the evidence contains
    answers: float | None = None  # share of the question's aspects the evidence covers

    @property
    def level(self) -> str:
        """CSS level: the stage's verdict wins (unsupported is always 'low')."""
        if self.supported is False:
            return "low"
        level = support_level(self.support or 0.0)
        return "mid" if self.supported and level == "low" else level

    def backs(self, n: int) -> bool:
        """Whether this sentence's support was measured against source n."""
        return (
            self.evidence_source == n if self.evidence_source is not None else n in self.citations
        )


def sentence_supports(result: AnswerResult) -> list[SentenceSupport]:
    """`result.sentences` as typed records; [] when the answer stage did not provide them.

    Items may be dicts or objects (the field's exact type belongs to the answer stage).
    """

    def field(item: Any, name: str, default: Any = None) -> Any:
        value = item.get(name, default) if isinstance(item, dict) else getattr(item, name, default)
        return default if value is None else value

    return [
        SentenceSupport(
            text=str(field(item, "text", "")),
            citations=[int(n) for n in field(item, "citations", [])],
            support=None if field(item, "support") is None else float(field(item, "support")),
            evidence=str(field(item, "evidence", "")),
            evidence_source=field(item, "evidence_source"),
            supported=field(item, "supported"),
            quote=bool(field(item, "quote", False)),
            location=str(field(item, "location", "")),
            covers=tuple(field(item, "covers", ())),
            answers=None if field(item, "answers") is None else float(field(item, "answers")),
        )
        for item in getattr(result, "sentences", None) or []
    ]


def support_level(support: float) -> str:
    return next(name for threshold, name in SUPPORT_LEVELS if support >= threshold)


MARKDOWN_SPECIALS = str.maketrans({c: f"&#{ord(c)};" for c in "*_`$~\\#|"})
"""Characters the chat's Markdown/LaTeX renderer would act on, as HTML entities."""


def escape_text(text: str) -> str:
    """Model or abstract text, shown literally: no HTML, and no Markdown or LaTeX either.

    The chat renders messages as Markdown with math, so `p_1 and p_2` would turn
    italic and `$x$` into a formula unless those characters are entities.
    """
    return html.escape(text, quote=False).translate(MARKDOWN_SPECIALS)


def _chips(text: str, turn: int) -> str:
    """Escape `text` and turn each [n] marker into chips pointing at this turn's cards."""

    def chip(match: re.Match) -> str:
        return " " + "".join(
            f'<a class="cite-chip" href="#src-{turn}-{n}" data-turn="{turn}" data-cite="{n}">{n}</a>'
            for n in marker_numbers(match.group(1))
        )

    return MARKER.sub(chip, escape_text(text))


def _support_dot(sentence: SentenceSupport, generated: bool = True) -> str:
    """The mark after a sentence: quote, support verdict, or a missing-citation flag."""
    if sentence.support is None:
        if generated and not sentence.citations:
            return ('<span class="uncited-flag" title="this generated sentence cites no source: '
                    'nothing backs it">no citation</span>')  # fmt: skip
        return ""
    where = f", {sentence.location}" if sentence.location and sentence.location != "abstract" else ""
    if sentence.quote:
        n = sentence.evidence_source
        return (f'<span class="quote-mark" title="quoted verbatim from source [{n}]{where}">'
                f"quote from [{n}]</span>")  # fmt: skip
    verdict = {True: "supported", False: "not supported", None: "support"}[sentence.supported]
    return (
        f'<span class="support-dot support-{sentence.level}" data-support="{sentence.support:.2f}" '
        f'title="{verdict} by the cited evidence{where} ({sentence.support:.2f})"></span>'
    )


def answer_html(result: AnswerResult, turn: int = 0) -> str:
    """Answer text with each [n] turned into chips; a quote mark, support dot or
    missing-citation flag per sentence when known."""
    sentences = sentence_supports(result)
    generated = "extractive" not in result.llm  # extractive framing cites nothing on purpose
    if sentences:
        body = " ".join(
            f'<span class="answer-sentence">{_chips(s.text, turn)}{_support_dot(s, generated)}</span>'
            for s in sentences
        )
    else:
        body = _chips(result.answer, turn)
    notes = "".join(f'<div class="answer-note">{html.escape(note)}</div>' for note in result.notes)
    return f'<div class="answer" data-turn="{turn}">{body}</div>{notes}'


def _normalise(text: str) -> str:
    return " ".join(text.split())


def highlight_evidence(abstract: str, evidence: Iterable[str]) -> str:
    """Escaped abstract with each evidence sentence found in it wrapped in <mark>."""
    text = html.escape(_normalise(abstract), quote=False)
    for sentence in evidence:
        needle = html.escape(_normalise(sentence), quote=False)
        if needle and needle in text and f'<mark class="evidence">{needle}' not in text:
            text = text.replace(needle, f'<mark class="evidence">{needle}</mark>', 1)
    return text


def _source_support(
    sentences: Sequence[SentenceSupport], n: int
) -> tuple[list[SentenceSupport], list[str]]:
    """The sentences whose evidence comes from source n, and those evidence sentences."""
    backed = [s for s in sentences if s.backs(n) and s.support is not None]
    return backed, [s.evidence for s in backed if s.evidence]


def answers_badge(backed: Sequence[SentenceSupport]) -> str:
    """What of the question this source's evidence answers ("answers: memory, speed")."""
    covered = list(dict.fromkeys(word for s in backed for word in s.covers))
    shares = [s.answers for s in backed if s.answers is not None]
    if not shares:
        return ""
    share = max(shares)
    label = f"answers: {', '.join(covered)}" if covered else "answers none of the question's terms"
    return (f'<span class="support-badge support-{support_level(share)}" data-answers="{share:.2f}" '
            f'title="share of the question\'s terms this source\'s evidence contains: {share:.0%}">'
            f"{html.escape(label)}</span>")  # fmt: skip


def body_evidence(abstract: str, backed: Sequence[SentenceSupport]) -> str:
    """Evidence from the body (not in the abstract), each with its location."""
    seen = _normalise(abstract)
    rows = []
    for sentence in backed:
        if sentence.evidence and _normalise(sentence.evidence) not in seen:
            seen += " " + _normalise(sentence.evidence)
            rows.append(
                f'<div class="source-passage"><span class="passage-location">'
                f'{html.escape(sentence.location or "body")}</span> '
                f'<mark class="evidence">{escape_text(_normalise(sentence.evidence))}</mark></div>'
            )
    return "".join(rows)


PAGE = re.compile(r"\bp\. (\d+)")


def evidence_pages(backed: Sequence[SentenceSupport]) -> list[int]:
    """Pages the evidence of these sentences is on, in order (abstract evidence: page 1)."""
    pages = []
    for sentence in backed:
        match = PAGE.search(sentence.location)
        page = int(match.group(1)) if match else 1 if sentence.location == "abstract" else 0
        if page and page not in pages:
            pages.append(page)
    return pages


def pdf_buttons(source: SourceRecord, turn: int, pages: Sequence[int]) -> str:
    """Buttons opening the source's PDF at each page (page 1 when no evidence page is known).

    Real <button>s: focusable, Enter opens. They carry only which turn, source and
    page; the server looks the file up from the paper id it holds for that source.
    """
    buttons = "".join(
        f'<button type="button" class="open-pdf" data-turn="{turn}" data-n="{source.n}" '
        f'data-page="{page}" title="open the PDF of [{source.n}] at page {page}">'
        f"Open PDF at p. {page}</button>"
        for page in (pages or [1])
    )
    return f'<div class="pdf-buttons">{buttons}</div>'


def _paper_link(source: SourceRecord) -> str:
    paper_id = html.escape(source.paper_id)
    if not source.url:
        return paper_id
    return f'<a href="{html.escape(source.url)}" target="_blank" rel="noopener">{paper_id}</a>'


def source_card(
    source: SourceRecord, turn: int = 0, sentences: Sequence[SentenceSupport] = (),
    pdf: bool = False,
) -> str:  # fmt: skip
    title = html.escape(source.title)
    link = _paper_link(source)
    meta = " · ".join(
        part for part in (str(source.year or ""), html.escape(source.authors[:160])) if part
    )
    backed, evidence = _source_support(sentences, source.n)
    meter = answers_badge(backed)
    buttons = pdf_buttons(source, turn, evidence_pages(backed)) if pdf else ""
    return (
        f'<div class="source-card" id="src-{turn}-{source.n}" data-turn="{turn}" data-n="{source.n}">'
        f'<div class="source-title"><span class="source-n">[{source.n}]</span> {title} {meter}</div>'
        f'<div class="source-meta">{link}{" · " + meta if meta else ""} · score {source.score:.3f}</div>'
        f'<div class="source-abstract">{highlight_evidence(source.abstract, evidence)}</div>'
        f"{body_evidence(source.abstract, backed)}{buttons}</div>"
    )


def sources_html(
    result: AnswerResult, turn: int = 0, hidden: bool = False, pdfs: Collection[str] = ()
) -> str:
    """One turn's sources: cited papers as full cards, other retrieved papers listed below;
    papers in `pdfs` (ids) get buttons opening their PDF."""
    sentences = sentence_supports(result)
    cited = [source for source in result.sources if source.cited]
    others = [source for source in result.sources if not source.cited]
    parts = [f'<section class="turn-sources" data-turn="{turn}"{" hidden" if hidden else ""}>']
    if cited:
        parts.append("<h4>Cited sources</h4>")
        parts.extend(
            source_card(source, turn, sentences, source.paper_id in pdfs) for source in cited
        )
    else:
        parts.append("<p>No sources cited.</p>")
    if others:
        parts.append("<h4>Also retrieved (not cited)</h4><ul class='uncited'>")
        parts.extend(  # each expands to its abstract; the id links out when there is a URL
            f"<li><details><summary>[{s.n}] {html.escape(s.title)} <small>({_paper_link(s)}"
            f"{', ' + str(s.year) if s.year else ''})</small></summary>"
            f'<div class="source-abstract">{html.escape(_normalise(s.abstract))}</div></details>'
            f"{pdf_buttons(s, turn, []) if s.paper_id in pdfs else ''}</li>"
            for s in others
        )
        parts.append("</ul>")
    parts.append("</section>")
    return "".join(parts)


def chat_sources_html(
    results: Sequence[AnswerResult], first: int = 0, pdfs: Collection[str] = ()
) -> str:
    """Sources of a chat's turns numbered `first` on; only the latest is visible until a chip
    selects another. A chip of an older turn (a session keeps only its latest turns) shows
    a note saying where that answer's references are. `pdfs`: ids of the papers that can be
    opened as PDFs (see ui/pdfview.py)."""
    if not results:
        return '<p class="sources-empty">Sources of the answer appear here.</p>'
    latest = first + len(results) - 1
    older = (
        '<section class="turn-sources" data-turn="older" hidden><p class="sources-older">'
        f"This page keeps the sources of the latest {len(results)} answers. Earlier answers' "
        "references are in the saved conversation: use <strong>Export conversation</strong>."
        "</p></section>"
        if first
        else ""
    )
    return older + "".join(
        sources_html(result, turn, turn != latest, pdfs)
        for turn, result in enumerate(results, start=first)
    )


def plain_text(result: AnswerResult) -> str:
    """The answer and its reference list as plain text: what "Copy answer" puts on the clipboard."""
    lines = [result.answer.strip()]
    cited = [source for source in result.sources if source.cited]
    if cited:
        lines.append("")
        lines.append("References")
        for source in cited:
            link = f" {source.url}" if source.url else ""
            year = f", {source.year}" if source.year else ""
            lines.append(f"[{source.n}] {source.title} ({source.paper_id}{year}){link}")
    return "\n".join(lines)
