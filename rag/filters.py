"""Metadata filters a user can put on retrieval (CLI flags, UI controls, eval suites).

How they are applied: the year range is exact metadata, so it is pushed down
to Chroma as a `where` clause. Author, category and source are substring or
token matches, which Chroma's metadata `where` cannot express (no substring
operator; `where_document` would search the chunk text, not the metadata).
Those are evaluated here, in Python, over the metadata the lexical index keeps
for every paper; the resulting allowed-id set masks BM25 and restricts the
dense search (see rag.retrieve).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

YEAR_RANGE = re.compile(r"^\s*(\d{4})?\s*(?:(-)\s*(\d{4})?)?\s*$")


@dataclass(frozen=True)
class RetrievalFilters:
    """Restrict which papers may be retrieved; None means no restriction on that field."""

    year_min: int | None = None
    year_max: int | None = None
    author: str | None = None  # case-insensitive substring of the authors string
    category: str | None = None  # e.g. "cs.CL": one of the paper's space-separated categories
    source: str | None = None  # substring of the file the paper was ingested from

    def is_empty(self) -> bool:
        return all(value in (None, "") for value in self.__dict__.values())

    def needs_metadata_scan(self) -> bool:
        """True when a filter cannot be pushed down to Chroma as a `where` clause."""
        return any(value not in (None, "") for value in (self.author, self.category, self.source))

    def chroma_where(self) -> dict | None:
        """The part Chroma can apply itself: the year range on integer metadata.

        Year 0 means unknown; a year filter never lets unknown years through.
        """
        clauses = []
        if self.year_min is not None or self.year_max is not None:
            clauses.append({"year": {"$gte": max(self.year_min or 1, 1)}})
        if self.year_max is not None:
            clauses.append({"year": {"$lte": self.year_max}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def matches(self, meta: dict) -> bool:
        """Whether one paper's metadata (year, authors, categories, source) passes every filter."""
        return bool(self.mask([meta])[0])

    def mask(self, metadata: Sequence[dict]) -> np.ndarray:
        """1.0 for papers that pass, 0.0 for those that do not (in the given order).

        One pass per active filter rather than per paper and filter: at 50k papers
        this is what a filtered query pays (the lexical index caches it per filter).
        """
        count = len(metadata)
        keep = np.ones(count, dtype=bool)
        if self.year_min is not None or self.year_max is not None:
            years = np.fromiter((int(m.get("year") or 0) for m in metadata), np.int64, count)
            keep &= years > 0  # 0 = unknown year: never passes a year filter
            if self.year_min is not None:
                keep &= years >= self.year_min
            if self.year_max is not None:
                keep &= years <= self.year_max
        if self.author:
            needle = self.author.lower()
            keep &= np.fromiter(
                (needle in str(m.get("authors", "")).lower() for m in metadata), bool, count
            )
        if self.category:
            wanted = self.category.lower()
            keep &= np.fromiter(
                (wanted in str(m.get("categories", "")).lower().split() for m in metadata),
                bool, count,
            )  # fmt: skip
        if self.source:
            keep &= np.fromiter((self.source in str(m.get("source", "")) for m in metadata), bool, count)
        return keep.astype(np.float32)


def parse_year_range(text: str) -> tuple[int | None, int | None]:
    """'2023-2025', '2023' (that year only), '2023-' or '-2025' → (min, max).

    Raises ValueError with a message fit for a one-line CLI error.
    """
    match = YEAR_RANGE.match(text or "")
    if not match or not (match.group(1) or match.group(3)):
        raise ValueError(f"--year {text!r}: expected YYYY, YYYY-YYYY, YYYY- or -YYYY")
    low = int(match.group(1)) if match.group(1) else None
    high = int(match.group(3)) if match.group(3) else None
    if not match.group(2):
        high = low
    if low is not None and high is not None and low > high:
        raise ValueError(f"--year {text!r}: the first year is after the second")
    return low, high
