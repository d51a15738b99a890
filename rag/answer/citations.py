"""Citation markers: parse [1], [1, 3], [1-3], [1][2], [2, p. 7]; drop invented ones; renumber.

The product promise is that a reader can open every citation, so a marker that
points outside the given sources is never shown: it is removed and counted. A
marker may name the page of a body passage (`[2, p. 7]`, `[1; 2, p. 7]`); a page
the cited source has no passage on is dropped (the number stays).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_PAGE = r"\s*,\s*pp?\.\s*\d+(?:\s*[-–]\s*\d+)?"
_ITEM = rf"\d+(?:{_PAGE})?"
_SEP = r"\s*(?:[-–—,;]|and)\s*"
MARKER = re.compile(rf"\s?\[(\s*{_ITEM}(?:{_SEP}{_ITEM})*\s*)\]")
ITEM = re.compile(r"(\d+)(?:\s*[-–—]\s*(\d+))?(?:\s*,\s*pp?\.\s*(\d+)(?:\s*[-–]\s*\d+)?)?")
MAX_RANGE = 20  # "[1-999]" is noise, not 999 citations


def marker_items(inner: str) -> list[tuple[int, int | None]]:
    """(source number, page or None) inside one bracket, ranges expanded, order kept,
    each number once (its first page wins)."""
    items: list[tuple[int, int | None]] = []
    for match in ITEM.finditer(inner):
        low, high, page = match.group(1), match.group(2), match.group(3)
        if high is None:
            values = [int(low)]
        else:
            first, last = int(low), int(high)
            values = list(range(first, last + 1)) if 0 <= last - first <= MAX_RANGE else [first, last]
        for value in values:
            if all(value != number for number, _ in items):
                items.append((value, int(page) if page and high is None else None))
    return items


def marker_numbers(inner: str) -> list[int]:
    """Numbers inside one bracket, ranges expanded, order kept, duplicates dropped."""
    return [number for number, _ in marker_items(inner)]


def format_marker(items: list[tuple[int, int | None]]) -> str:
    """'[1, 3]', '[2, p. 7]', '[1; 2, p. 7]': pages force ';' between items."""
    paged = any(page for _, page in items)
    parts = [f"{n}, p. {page}" if page else str(n) for n, page in items]
    return "[" + ("; " if paged else ", ").join(parts) + "]"


@dataclass
class ValidatedAnswer:
    """Answer text with only valid markers, renumbered 1..n in order of first use."""

    text: str
    order: list[int] = field(default_factory=list)  # original source numbers, by first use
    invalid: int = 0  # markers (numbers) that pointed outside the sources

    def new_number(self, original: int) -> int:
        return self.order.index(original) + 1


def validate_citations(
    text: str, n_sources: int, pages: Mapping[int, set[int]] | None = None
) -> ValidatedAnswer:
    """Keep markers 1..n_sources, count the rest, renumber by first use.

    `pages[n]` is the set of pages source n has passages on; a cited page outside it
    is dropped (None: pages are not checked).
    """
    result = ValidatedAnswer(text="")
    pieces: list[str] = []
    last = 0
    for match in MARKER.finditer(text):
        pieces.append(text[last : match.start()])
        last = match.end()
        items = marker_items(match.group(1))
        valid = [(n, page) for n, page in items if 1 <= n <= n_sources]
        result.invalid += len(items) - len(valid)
        for number, _ in valid:
            if number not in result.order:
                result.order.append(number)
        if valid:
            renumbered = sorted(
                (result.new_number(n), page if pages is None or page in pages.get(n, ()) else None)
                for n, page in valid
            )
            pieces.append(" " + format_marker(renumbered))
    pieces.append(text[last:])
    result.text = re.sub(r"[ \t]+([.,;:])", r"\1", "".join(pieces)).strip()
    return result


def cited_numbers(text: str) -> list[int]:
    """Every source number cited in `text`, in order of first use."""
    seen: list[int] = []
    for match in MARKER.finditer(text):
        for number in marker_numbers(match.group(1)):
            if number not in seen:
                seen.append(number)
    return seen
