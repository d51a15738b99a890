"""Metadata filters: parsing, matching, and restricting real retrieval results."""

from __future__ import annotations

import pytest

from conftest import make_settings
from rag.cli import main
from rag.filters import RetrievalFilters, parse_year_range
from rag.index import PaperIndex
from rag.papers import Paper
from rag.retrieve import retrieve

PAPERS = [
    Paper("p-2019", "Neural machine translation with attention",
          "Attention lets a translation model align source and target words.",
          authors="Ada Byron, Carl Dunn", year=2019, categories="cs.CL cs.LG", source="/d/nlp.jsonl"),
    Paper("p-2023", "Attention-based translation for low-resource languages",
          "Multilingual attention models translate languages with little parallel text.",
          authors="Eve Fisher", year=2023, categories="cs.CL", source="/d/nlp-2023.jsonl"),
    Paper("p-2024", "Vision transformers with attention for images",
          "Attention over image patches classifies pictures.",
          authors="Gus Hale, Ada Byron", year=2024, categories="cs.CV", source="/d/vision.jsonl"),
    Paper("p-2025", "Translation quality estimation with attention",
          "Estimating translation quality without references using attention features.",
          authors="Ivy Jones", year=2025, categories="cs.CL", source="/d/nlp-2025.jsonl"),
]  # fmt: skip
QUERY = "attention models for translation"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2023-2025", (2023, 2025)), ("2023", (2023, 2023)), ("2023-", (2023, None)),
     ("-2025", (None, 2025)), (" 2023 - 2025 ", (2023, 2025))],
)  # fmt: skip
def test_year_ranges_parse(text, expected):
    assert parse_year_range(text) == expected


@pytest.mark.parametrize("text", ["", "-", "20x3", "2025-2023", "2023..2025", "23-25"])
def test_bad_year_ranges_are_rejected(text):
    with pytest.raises(ValueError, match="--year"):
        parse_year_range(text)


def test_matching_rules():
    meta = {"year": 2023, "authors": "Eve Fisher, Ada Byron", "categories": "cs.CL cs.LG",
            "source": "/d/nlp.jsonl"}  # fmt: skip
    assert RetrievalFilters(author="ada BYRON").matches(meta)
    assert not RetrievalFilters(author="Carl").matches(meta)
    assert RetrievalFilters(category="cs.lg").matches(meta)
    assert not RetrievalFilters(category="cs.L").matches(meta)  # a category, not a substring
    assert RetrievalFilters(source="nlp.json").matches(meta)
    assert not RetrievalFilters(year_min=2024).matches(meta)
    assert not RetrievalFilters(year_max=2022).matches({**meta, "year": 0})


@pytest.fixture(scope="module")
def small_index(tmp_path_factory) -> PaperIndex:
    index = PaperIndex(make_settings(tmp_path_factory.mktemp("filters")))
    index.add_papers(PAPERS)
    return index


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
@pytest.mark.parametrize(
    ("filters", "allowed"),
    [
        (RetrievalFilters(year_min=2023, year_max=2025), {"p-2023", "p-2024", "p-2025"}),
        (RetrievalFilters(year_min=2024), {"p-2024", "p-2025"}),
        (RetrievalFilters(author="ada byron"), {"p-2019", "p-2024"}),
        (RetrievalFilters(category="cs.CL"), {"p-2019", "p-2023", "p-2025"}),
        (RetrievalFilters(source="nlp-20"), {"p-2023", "p-2025"}),
        (RetrievalFilters(year_min=2023, category="cs.CL", author="Ivy"), {"p-2025"}),
        (RetrievalFilters(category="math.AG"), set()),
    ],
)
def test_filters_restrict_results(small_index, mode, filters, allowed):
    small_index.settings.retrieval_mode = mode
    try:
        unfiltered = {s.paper.id for s in retrieve(small_index, QUERY, 10)}
        filtered = {s.paper.id for s in retrieve(small_index, QUERY, 10, filters)}
    finally:
        small_index.settings.retrieval_mode = "hybrid"
    assert filtered <= allowed
    assert filtered == allowed & unfiltered  # nothing allowed is lost, nothing else leaks in


def test_cli_filters_and_bad_year(small_index, capsys):
    index_dir = str(small_index.settings.index)
    assert main(["retrieve", QUERY, "--index", index_dir, "--json", "--year", "2024-",
                 "--category", "cs.CL"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert '"p-2025"' in out and '"p-2019"' not in out and '"p-2024"' not in out
    assert main(["retrieve", QUERY, "--index", index_dir, "--year", "twenty"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --year 'twenty'")


def test_filter_notice_counts_and_names_papers_a_year_filter_drops():
    from rag.filters import filter_notice

    meta = [{"year": 2021, "authors": "Ann"}, {"year": 0, "authors": "Ann"}, {"year": 0, "authors": "Bo"},
            {"year": 2019, "authors": "Bo"}]  # fmt: skip
    assert filter_notice(meta, None, 5) == ""
    assert filter_notice(meta, RetrievalFilters(author="ann"), 1) == "Filters match 2 of 4 papers."
    years = filter_notice(meta, RetrievalFilters(year_min=2020, author="ann"), 5)
    assert years == (
        "⚠ Only 1 of 4 papers match the filters (an answer uses 5). "
        "1 paper(s) without a known year are left out by the year filter."
    )
    assert filter_notice(meta, RetrievalFilters(year_min=2030), 5).startswith(
        "⚠ No paper matches the filters (of 4): answers will abstain. 2 paper(s) without"
    )
