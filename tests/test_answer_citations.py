"""Citation markers: every form the models write, invented numbers removed, renumbering."""

from __future__ import annotations

import pytest

from rag.answer.citations import cited_numbers, marker_numbers, validate_citations


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
