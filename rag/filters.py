"""Metadata filters a user can put on retrieval (CLI flags, UI controls, eval suites)."""

from __future__ import annotations

from dataclasses import dataclass


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
