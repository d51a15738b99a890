"""Citation markers: parse [1], [1, 3], [1-3], [1][2]; drop invented ones; renumber.

The product promise is that a reader can open every citation, so a marker that
points outside the given sources is never shown: it is removed and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = re.compile(r"\s?\[(\s*\d+(?:\s*(?:[-–—,;]|and)\s*\d+)*\s*)\]")
RANGE = re.compile(r"(\d+)\s*[-–—]\s*(\d+)")
MAX_RANGE = 20  # "[1-999]" is noise, not 999 citations


def marker_numbers(inner: str) -> list[int]:
    """Numbers inside one bracket, ranges expanded, order kept, duplicates dropped."""
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", inner.strip()):
        span = RANGE.fullmatch(part.strip())
        if span:
            low, high = int(span.group(1)), int(span.group(2))
            values = range(low, high + 1) if 0 <= high - low <= MAX_RANGE else [low, high]
        elif part.strip().isdigit():
            values = [int(part)]
        else:
            values = []
        numbers.extend(value for value in values if value not in numbers)
    return numbers


@dataclass
class ValidatedAnswer:
    """Answer text with only valid markers, renumbered 1..n in order of first use."""

    text: str
    order: list[int] = field(default_factory=list)  # original source numbers, by first use
    invalid: int = 0  # markers (numbers) that pointed outside the sources

    def new_number(self, original: int) -> int:
        return self.order.index(original) + 1


def validate_citations(text: str, n_sources: int) -> ValidatedAnswer:
    """Keep markers 1..n_sources, count the rest, renumber by first use."""
    result = ValidatedAnswer(text="")
    pieces: list[str] = []
    last = 0
    for match in MARKER.finditer(text):
        pieces.append(text[last : match.start()])
        last = match.end()
        numbers = marker_numbers(match.group(1))
        valid = [number for number in numbers if 1 <= number <= n_sources]
        result.invalid += len(numbers) - len(valid)
        for number in valid:
            if number not in result.order:
                result.order.append(number)
        if valid:
            renumbered = ", ".join(str(n) for n in sorted(result.new_number(v) for v in valid))
            pieces.append(f" [{renumbered}]")
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
