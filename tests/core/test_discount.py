"""Tests for discounts and for sharing a cart discount over lines (largest remainder)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.discount import Discount, allocate

PROPERTY = settings(max_examples=100, deadline=None)

non_negative_weights = st.lists(
    st.integers(min_value=0, max_value=100_000), min_size=1, max_size=12
)

# --- Discount ------------------------------------------------------------------------------------


def test_percent_discount_is_rounded_half_up() -> None:
    assert Discount.percent(1000).amount_off(999) == 100  # 99.9
    assert Discount.percent(500).amount_off(10) == 1  # 0.5 -> 1
    assert Discount.percent(500).amount_off(9) == 0  # 0.45 -> 0
    assert Discount.percent(1250).amount_off(1000) == 125


def test_fixed_discount_takes_its_value_but_never_more_than_the_base() -> None:
    assert Discount.fixed(100).amount_off(250) == 100
    assert Discount.fixed(300).amount_off(250) == 250


@pytest.mark.parametrize("discount", [Discount.percent(1000), Discount.fixed(100)])
@pytest.mark.parametrize("base", [0, -1, -500])
def test_nothing_comes_off_a_zero_or_negative_base(discount: Discount, base: int) -> None:
    assert discount.amount_off(base) == 0


@pytest.mark.parametrize(
    ("kind", "value"),
    [("percent", -1), ("fixed", -1), ("percent", 10_001), ("coupon", 100)],
)
def test_invalid_discounts_are_refused(kind: str, value: int) -> None:
    with pytest.raises(ValueError):
        Discount(kind, value)  # type: ignore[arg-type]


def test_constructors_keep_the_reason() -> None:
    assert Discount.percent(1000, "staff") == Discount("percent", 1000, "staff")
    assert Discount.fixed(50, "damaged") == Discount("fixed", 50, "damaged")


@PROPERTY
@given(st.integers(min_value=0, max_value=10**9))
def test_percent_100_takes_everything(base: int) -> None:
    assert Discount.percent(10_000).amount_off(base) == base


@PROPERTY
@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=-(10**7), max_value=10**7))
def test_fixed_discount_is_never_more_than_the_base(value: int, base: int) -> None:
    off = Discount.fixed(value).amount_off(base)
    assert 0 <= off <= max(base, 0)
    assert off == min(value, max(base, 0))


@PROPERTY
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=10**7))
def test_percent_discount_is_within_half_a_unit_of_exact_and_never_more_than_the_base(
    basis_points: int, base: int
) -> None:
    off = Discount.percent(basis_points).amount_off(base)
    assert 0 <= off <= base
    assert abs(off - Fraction(base * basis_points, 10_000)) <= Fraction(1, 2)


# --- allocate ------------------------------------------------------------------------------------


def test_allocate_hands_the_leftover_to_the_largest_remainders() -> None:
    # Shares 3.33 and 6.67: floors 3 and 6, the one leftover goes to the larger remainder.
    assert allocate(10, [1, 2]) == [3, 7]
    assert allocate(100, [448, 199]) == [69, 31]


def test_allocate_breaks_remainder_ties_towards_the_earlier_line() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]


def test_allocate_of_nothing_is_all_zero() -> None:
    assert allocate(0, [5, 0, 7]) == [0, 0, 0]
    assert allocate(0, []) == []
    assert allocate(0, [0, 0]) == [0, 0]


def test_allocate_gives_nothing_to_zero_weights() -> None:
    assert allocate(7, [0, 3, 0]) == [0, 7, 0]


@pytest.mark.parametrize("weights", [[], [0, 0], [2, -3]])
def test_allocate_refuses_to_share_something_over_no_weight(weights: list[int]) -> None:
    # There is no proportional split, and returning zeros would lose the total.
    with pytest.raises(ValueError, match="cannot share"):
        allocate(5, weights)


def test_allocate_of_a_negative_total_mirrors_the_positive_one() -> None:
    # Truncating towards zero used to give [1, 0] here: parts adding up to +1, not -1.
    assert allocate(-1, [1, 1]) == [-1, 0]
    assert allocate(-5, [1, 1, 1]) == [-2, -2, -1]


@PROPERTY
@given(st.integers(min_value=-(10**7), max_value=10**7), non_negative_weights)
def test_allocate_parts_add_up_exactly_and_each_is_within_one_of_its_share(
    total: int, weights: list[int]
) -> None:
    if sum(weights) == 0:
        weights = [*weights[:-1], 1]
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - Fraction(total * weight, sum(weights))) < 1


@PROPERTY
@given(st.integers(min_value=0, max_value=10**7), non_negative_weights)
def test_allocate_never_gives_a_negative_part_for_non_negative_weights(
    total: int, weights: list[int]
) -> None:
    if sum(weights) == 0:
        weights = [*weights[:-1], 1]
    parts = allocate(total, weights)
    assert all(part >= 0 for part in parts)
    # A line never gets more than its own weight when the total does not exceed the weights.
    if total <= sum(weights):
        assert all(part <= weight for part, weight in zip(parts, weights, strict=True))


@PROPERTY
@given(st.integers(min_value=-(10**7), max_value=10**7), non_negative_weights)
def test_allocate_is_deterministic_and_symmetric_in_sign(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        weights = [*weights[:-1], 1]
    parts = allocate(total, weights)
    assert allocate(total, tuple(weights)) == parts
    assert allocate(total, list(weights)) == parts
    assert allocate(-total, weights) == [-p for p in parts]


@PROPERTY
@given(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.lists(st.integers(min_value=-1000, max_value=1000), min_size=1, max_size=10).filter(
        lambda w: sum(w) > 0
    ),
)
def test_allocate_adds_up_even_with_negative_weights(total: int, weights: list[int]) -> None:
    # A deposit return is a negative line; the split must still add up exactly.
    parts = allocate(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - Fraction(total * weight, sum(weights))) < 1
