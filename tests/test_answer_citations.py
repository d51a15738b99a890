"""Citation markers: every form the models write, invented numbers removed, renumbering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answer.citations import cited_numbers, marker_items, marker_numbers, validate_citations


@pytest.mark.parametrize(
    ("inner", "numbers"),
    [("1", [1]), ("1, 3", [1, 3]), ("1-3", [1, 2, 3]), ("1–3", [1, 2, 3]), ("2; 2, 4", [2, 4]),
     ("1 and 2", [1, 2]), ("3-1", [3, 1]), ("1-999", [1, 999])],
)  # fmt: skip
def test_marker_numbers(inner, numbers):
    assert marker_numbers(inner) == numbers


def test_single_and_list_markers_kept():
    result = validate_citations("A holds [1]. B holds [1, 3].", 3)
    assert result.text == "A holds [1]. B holds [1, 2]."  # 3 is the 2nd source used
    assert result.order == [1, 3] and result.invalid == 0


def test_range_expands_and_renumbers():
    result = validate_citations("All agree [2-4].", 4)
    assert result.order == [2, 3, 4]
    assert result.text == "All agree [1, 2, 3]."


def test_adjacent_markers():
    result = validate_citations("Both say so [1][2].", 2)
    assert result.order == [1, 2]
    assert cited_numbers(result.text) == [1, 2]
    assert "[1]" in result.text and "[2]" in result.text


def test_out_of_range_removed_and_counted():
    result = validate_citations("Claim [9]. Other [0]. Mixed [2, 7]. Fine [1].", 2)
    assert result.invalid == 3
    assert "[9]" not in result.text and "[0]" not in result.text and "7" not in result.text
    assert result.text == "Claim. Other. Mixed [1]. Fine [2]."
    assert all(1 <= n <= 2 for n in cited_numbers(result.text))


def test_renumbered_by_first_use():
    result = validate_citations("First [3]. Second [1]. Again [3]. Last [2].", 3)
    assert result.order == [3, 1, 2]
    assert result.text == "First [1]. Second [2]. Again [1]. Last [3]."


def test_text_without_markers_is_unchanged():
    result = validate_citations("No citations here, [sic] nor [a].", 3)
    assert result.text == "No citations here, [sic] nor [a]."
    assert result.order == [] and result.invalid == 0


def test_page_markers_parse_validate_and_renumber():
    assert marker_items("2, p. 7") == [(2, 7)]
    assert marker_items("1; 3, p. 12") == [(1, None), (3, 12)]
    result = validate_citations("Body fact [3, p. 7]. Abstract fact [1].", 3, {3: {7}, 1: set()})
    assert result.text == "Body fact [1, p. 7]. Abstract fact [2]." and result.order == [3, 1]
    assert cited_numbers("Body fact [1, p. 7].") == [1]


def test_a_page_the_source_has_no_passage_on_is_dropped_not_the_citation():
    result = validate_citations("Claim [1, p. 99].", 1, {1: {7}})
    assert result.text == "Claim [1]." and result.invalid == 0


# --- properties: whatever a model writes, what is shown is valid and stable -----------
MARKERS = st.builds(
    lambda items, page: "[" + "; ".join(
        f"{n}, p. {page}" if page and i == 0 else str(n) for i, n in enumerate(items)
    ) + "]",
    st.lists(st.integers(0, 12), min_size=1, max_size=4), st.one_of(st.none(), st.integers(1, 30)),
)  # fmt: skip
TEXTS = st.lists(st.one_of(st.sampled_from(["Claim", "It holds.", " and ", "[a]", "x"]), MARKERS),
                 max_size=12).map(" ".join)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.integers(0, 8))
def test_validated_markers_are_in_range_and_numbered_by_first_use(text, n_sources):
    result = validate_citations(text, n_sources)
    shown = cited_numbers(result.text)
    assert all(1 <= n <= n_sources for n in shown)
    assert shown == list(range(1, len(shown) + 1))  # first use order is 1, 2, 3, ...
    assert len(result.order) == len(shown) and len(set(result.order)) == len(result.order)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.integers(0, 8))
def test_validation_is_idempotent(text, n_sources):
    once = validate_citations(text, n_sources)
    twice = validate_citations(once.text, n_sources)
    assert twice.text == once.text and twice.invalid == 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_marker_parsing_never_fails_and_never_repeats(inner):
    numbers = marker_numbers(inner)
    assert len(numbers) == len(set(numbers))
    assert all(number >= 0 for number in numbers)
