"""Tests for tax computation: inclusive and exclusive prices, per-line and per-total rounding."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.tax import BASIS_POINTS, TaxBreakdown, TaxLine, TaxPolicy, compute_taxes

EU = TaxPolicy.of({"standard": 1900, "reduced": 700}, prices_include_tax=True, rounding="line")
EU_TOTAL = dataclasses.replace(EU, rounding="total")
US = TaxPolicy.of({"state": 700, "exempt": 0}, prices_include_tax=False, rounding="line")
US_TOTAL = dataclasses.replace(US, rounding="total")

PROPERTY = settings(max_examples=100, deadline=None)


def exact_tax(policy: TaxPolicy, amount: int, rate: int) -> Fraction:
    """The unrounded tax in (inclusive) or on (exclusive) `amount`, written out independently."""
    if policy.prices_include_tax:
        return Fraction(amount) - Fraction(amount) / (1 + Fraction(rate, BASIS_POINTS))
    return Fraction(amount) * Fraction(rate, BASIS_POINTS)


def only(breakdown: TaxBreakdown, tax_class: str) -> TaxLine:
    """The tax line of one class."""
    (line,) = (x for x in breakdown.lines if x.tax_class == tax_class)
    return line


# --- policy --------------------------------------------------------------------------------------


def test_policy_of_sorts_classes_and_looks_up_rates() -> None:
    policy = TaxPolicy.of({"z": 1, "a": 2})
    assert policy.rates == (("a", 2), ("z", 1))
    assert policy.rate_of("z") == 1


def test_unknown_tax_class_raises_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="food"):
        EU.rate_of("food")
    with pytest.raises(KeyError, match="food"):
        compute_taxes(EU, [("food", 100)])


def test_policy_refuses_an_unknown_rounding_mode() -> None:
    # Anything but "line" used to mean per-total rounding without a word.
    with pytest.raises(ValueError, match="rounding"):
        TaxPolicy.of({"standard": 1900}, rounding="lines")  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [-1, 19.0, True])
def test_policy_refuses_a_negative_or_non_integer_rate(rate: object) -> None:
    with pytest.raises(ValueError, match="standard"):
        TaxPolicy.of({"standard": rate})  # type: ignore[dict-item]


# --- worked examples (also in docs/tax.md) -------------------------------------------------------


def test_inclusive_19_percent_on_1_19_contains_0_19_tax() -> None:
    breakdown = compute_taxes(EU, [("standard", 119)])
    assert breakdown.lines == (TaxLine("standard", 1900, net=100, tax=19, gross=119),)


def test_inclusive_7_percent_on_2_49_rounds_the_tax_half_up() -> None:
    # 249 * 700 / 10700 = 16.289... -> 16
    assert only(compute_taxes(EU, [("reduced", 249)]), "reduced") == TaxLine(
        "reduced", 700, net=233, tax=16, gross=249
    )


def test_exclusive_7_percent_on_10_00_adds_0_70() -> None:
    assert compute_taxes(US, [("state", 1000)]).lines == (
        TaxLine("state", 700, net=1000, tax=70, gross=1070),
    )


def test_exclusive_tax_at_exactly_half_a_cent_rounds_away_from_zero() -> None:
    # 7% of 0.50 is 3.5 cents.
    assert only(compute_taxes(US, [("state", 50)]), "state").tax == 4
    assert only(compute_taxes(US, [("state", -50)]), "state").tax == -4


def test_inclusive_three_times_0_10_per_line_differs_from_per_total() -> None:
    # Each 10 contains 10 * 1900 / 11900 = 1.596 -> 2 cents; three lines 6.
    # Together 30 contains 4.789 -> 5 cents.
    lines = [("standard", 10)] * 3
    assert only(compute_taxes(EU, lines), "standard") == TaxLine("standard", 1900, 24, 6, 30)
    assert only(compute_taxes(EU_TOTAL, lines), "standard") == TaxLine("standard", 1900, 25, 5, 30)


def test_exclusive_three_times_0_10_per_line_differs_from_per_total() -> None:
    # Each 10 gets 0.7 -> 1 cent; three lines 3.  Together 30 gets 2.1 -> 2 cents.
    lines = [("state", 10)] * 3
    assert only(compute_taxes(US, lines), "state") == TaxLine("state", 700, 30, 3, 33)
    assert only(compute_taxes(US_TOTAL, lines), "state") == TaxLine("state", 700, 30, 2, 32)


def test_classes_are_taxed_separately_and_listed_by_name() -> None:
    breakdown = compute_taxes(EU, [("standard", 119), ("reduced", 107), ("standard", 119)])
    assert breakdown.lines == (
        TaxLine("reduced", 700, net=100, tax=7, gross=107),
        TaxLine("standard", 1900, net=200, tax=38, gross=238),
    )
    assert (breakdown.net, breakdown.tax, breakdown.gross) == (300, 45, 345)


def test_zero_rate_class_gets_a_zero_tax_line() -> None:
    breakdown = compute_taxes(US, [("exempt", 1234), ("exempt", 1)])
    assert breakdown.lines == (TaxLine("exempt", 0, net=1235, tax=0, gross=1235),)


def test_no_amounts_give_an_empty_breakdown() -> None:
    breakdown = compute_taxes(EU, [])
    assert breakdown.lines == ()
    assert (breakdown.net, breakdown.tax, breakdown.gross) == (0, 0, 0)


# --- properties ----------------------------------------------------------------------------------

rates = st.dictionaries(
    st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=3000), min_size=1
)


@st.composite
def documents(draw: st.DrawFn, *, signed: bool = True) -> tuple[TaxPolicy, list[tuple[str, int]]]:
    """A random policy and a list of (tax class, amount) lines in its classes."""
    policy = TaxPolicy.of(
        draw(rates),
        prices_include_tax=draw(st.booleans()),
        rounding=draw(st.sampled_from(["line", "total"])),
    )
    low = -1_000_000 if signed else 0
    classes = [name for name, _ in policy.rates]
    amounts = draw(
        st.lists(
            st.tuples(st.sampled_from(classes), st.integers(min_value=low, max_value=1_000_000)),
            max_size=12,
        )
    )
    return policy, amounts


def per_class(amounts: list[tuple[str, int]]) -> dict[str, list[int]]:
    """Amounts grouped by tax class."""
    grouped: dict[str, list[int]] = defaultdict(list)
    for tax_class, amount in amounts:
        grouped[tax_class].append(amount)
    return grouped


@PROPERTY
@given(documents())
def test_inclusive_net_plus_tax_is_gross_is_the_sum_of_amounts(
    doc: tuple[TaxPolicy, list[tuple[str, int]]],
) -> None:
    policy, amounts = doc
    policy = dataclasses.replace(policy, prices_include_tax=True)
    breakdown = compute_taxes(policy, amounts)
    grouped = per_class(amounts)
    assert [x.tax_class for x in breakdown.lines] == sorted(grouped)
    for line in breakdown.lines:
        assert line.net + line.tax == line.gross == sum(grouped[line.tax_class])
        assert line.rate == policy.rate_of(line.tax_class)
    assert breakdown.gross == sum(a for _, a in amounts)


@PROPERTY
@given(documents())
def test_exclusive_gross_is_net_plus_tax_and_net_is_the_sum_of_amounts(
    doc: tuple[TaxPolicy, list[tuple[str, int]]],
) -> None:
    policy, amounts = doc
    policy = dataclasses.replace(policy, prices_include_tax=False)
    breakdown = compute_taxes(policy, amounts)
    grouped = per_class(amounts)
    for line in breakdown.lines:
        assert line.gross == line.net + line.tax
        assert line.net == sum(grouped[line.tax_class])
    assert breakdown.net == sum(a for _, a in amounts)


@PROPERTY
@given(documents())
def test_per_total_rounding_is_within_half_a_minor_unit_of_the_exact_tax(
    doc: tuple[TaxPolicy, list[tuple[str, int]]],
) -> None:
    policy, amounts = doc
    policy = dataclasses.replace(policy, rounding="total")
    grouped = per_class(amounts)
    for line in compute_taxes(policy, amounts).lines:
        exact = exact_tax(policy, sum(grouped[line.tax_class]), line.rate)
        assert abs(line.tax - exact) <= Fraction(1, 2)


@PROPERTY
@given(documents())
def test_per_line_rounding_is_within_half_a_minor_unit_per_line_of_the_exact_tax(
    doc: tuple[TaxPolicy, list[tuple[str, int]]],
) -> None:
    policy, amounts = doc
    policy = dataclasses.replace(policy, rounding="line")
    grouped = per_class(amounts)
    for line in compute_taxes(policy, amounts).lines:
        lines = grouped[line.tax_class]
        exact = sum((exact_tax(policy, a, line.rate) for a in lines), Fraction(0))
        assert abs(line.tax - exact) <= Fraction(len(lines), 2)
        # ... and it is exactly the sum of the lines' own rounded taxes.
        assert line.tax == sum(compute_taxes(policy, [(line.tax_class, a)]).tax for a in lines)


@PROPERTY
@given(documents())
def test_negating_every_amount_negates_every_tax_line_exactly(
    doc: tuple[TaxPolicy, list[tuple[str, int]]],
) -> None:
    # Refunds and voids rely on this: a returned line carries exactly the tax it was sold with.
    policy, amounts = doc
    forward = compute_taxes(policy, amounts)
    backward = compute_taxes(policy, [(c, -a) for c, a in amounts])
    assert backward.lines == tuple(
        dataclasses.replace(x, net=-x.net, tax=-x.tax, gross=-x.gross) for x in forward.lines
    )


@PROPERTY
@given(documents(signed=False))
def test_zero_rate_gives_zero_tax(doc: tuple[TaxPolicy, list[tuple[str, int]]]) -> None:
    policy, amounts = doc
    policy = dataclasses.replace(policy, rates=tuple((name, 0) for name, _ in policy.rates))
    breakdown = compute_taxes(policy, amounts)
    assert all(line.tax == 0 and line.net == line.gross for line in breakdown.lines)


@PROPERTY
@given(documents(signed=False))
def test_tax_on_non_negative_amounts_is_non_negative_and_below_the_gross(
    doc: tuple[TaxPolicy, list[tuple[str, int]]],
) -> None:
    policy, amounts = doc
    for line in compute_taxes(policy, amounts).lines:
        assert 0 <= line.tax <= line.gross
        assert line.net >= 0
