"""Tests for Money: integer minor units, exact parsing, babel formatting and commercial rounding."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.money import Money, currency_exponent, is_known_currency, round_half_up

NBSP = "\xa0"

# --- construction: integers only ----------------------------------------------------------------


@pytest.mark.parametrize("minor", [2.49, 249.0, True, False, Decimal("249"), Fraction(249), "249"])
def test_money_refuses_anything_but_int_minor_units(minor: object) -> None:
    with pytest.raises(TypeError):
        Money(minor, "EUR")  # type: ignore[arg-type]


def test_money_keeps_integer_minor_units_and_currency() -> None:
    m = Money(249, "EUR")
    assert (m.minor, m.currency) == (249, "EUR")
    assert type(m.minor) is int


def test_money_is_frozen() -> None:
    m = Money(249, "EUR")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.minor = 1  # type: ignore[misc]


def test_arithmetic_stays_in_integer_minor_units() -> None:
    a, b = Money(249, "EUR"), Money(51, "EUR")
    assert a + b == Money(300, "EUR")
    assert a - b == Money(198, "EUR")
    assert -a == Money(-249, "EUR")
    assert a.times(3) == Money(747, "EUR")
    assert Money.zero("JPY") == Money(0, "JPY")


def test_scaled_rounds_half_up_to_a_minor_unit() -> None:
    assert Money(1000, "EUR").scaled(1, 3) == Money(333, "EUR")
    assert Money(1000, "EUR").scaled(2, 3) == Money(667, "EUR")
    assert Money(5, "EUR").scaled(1, 2) == Money(3, "EUR")  # 2.5 -> 3
    assert Money(-5, "EUR").scaled(1, 2) == Money(-3, "EUR")  # -2.5 -> -3


# --- currency mismatch ---------------------------------------------------------------------------


def test_adding_or_subtracting_different_currencies_is_refused() -> None:
    with pytest.raises(ValueError, match=r"EUR.*USD"):
        Money(100, "EUR") + Money(100, "USD")
    with pytest.raises(ValueError, match=r"EUR.*USD"):
        Money(100, "EUR") - Money(100, "USD")


@pytest.mark.parametrize(
    "compare",
    [
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_comparing_different_currencies_is_refused(compare: object) -> None:
    # A generated ordering would say 100 JPY < 2.00 EUR because 100 < 200.
    with pytest.raises(ValueError, match=r"JPY.*EUR"):
        compare(Money(100, "JPY"), Money(200, "EUR"))  # type: ignore[operator]


def test_ordering_within_one_currency_follows_the_amount() -> None:
    small, large = Money(99, "EUR"), Money(100, "EUR")
    same = Money(100, "EUR")
    assert small < large <= same
    assert large > small
    assert same >= large
    assert not large < same
    assert sorted([large, small]) == [small, large]


def test_money_of_different_currencies_is_never_equal() -> None:
    assert Money(100, "EUR") != Money(100, "USD")


def test_comparing_money_with_a_plain_number_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _ = Money(100, "EUR") < 200


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("2.49", "EUR", 249),
        ("2.4", "EUR", 240),
        ("2.40", "EUR", 240),
        ("2.490", "EUR", 249),  # trailing zeros change nothing
        ("0.01", "EUR", 1),
        ("-2.49", "EUR", -249),
        ("+2.49", "EUR", 249),
        (" 2.49\n", "EUR", 249),
        ("100", "JPY", 100),
        ("100.0", "JPY", 100),
        ("1.234", "KWD", 1234),
        (".99", "EUR", 99),
        ("2.", "EUR", 200),
        ("12345678901234567890.12", "EUR", 1234567890123456789012),
    ],
)
def test_parse_reads_a_decimal_amount_exactly(text: str, currency: str, minor: int) -> None:
    parsed = Money.parse(text, currency)
    assert parsed == Money(minor, currency)
    assert type(parsed.minor) is int


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("1.005", "EUR"),
        ("2.499", "EUR"),
        ("1.5", "JPY"),
        ("0.0001", "KWD"),
        # 29 significant digits: Decimal.scaleb would round this to 100 under the default context.
        ("1.0000000000000000000000000001", "EUR"),
    ],
)
def test_parse_refuses_more_decimals_than_the_currency_has(text: str, currency: str) -> None:
    with pytest.raises(ValueError, match="decimal places"):
        Money.parse(text, currency)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "2,49",
        "2.49 EUR",
        "€2.49",
        "1e2",
        "1E-2",
        "1_000",
        "NaN",
        "Infinity",
        "-inf",
        ".",
        "-",
        "--1",
        "1 000",
        "1.2.3",
        "١٢",  # Arabic-Indic digits: Decimal() would read them as 12
    ],
)
def test_parse_refuses_garbage_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        Money.parse(text, "EUR")


@settings(max_examples=100, deadline=None)
@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(["EUR", "USD", "JPY", "KWD"]),
)
def test_parse_of_the_decimal_string_round_trips(minor: int, currency: str) -> None:
    money = Money(minor, currency)
    assert Money.parse(str(money.decimal), currency) == money


# --- currencies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "digits"), [("EUR", 2), ("USD", 2), ("JPY", 0), ("KWD", 3)])
def test_currency_exponent_comes_from_iso_4217(currency: str, digits: int) -> None:
    assert currency_exponent(currency) == digits


def test_is_known_currency_accepts_iso_codes_only() -> None:
    assert is_known_currency("EUR")
    assert is_known_currency("JPY")
    assert not is_known_currency("eur")
    assert not is_known_currency("EURO")
    assert not is_known_currency("ZZZ")


def test_decimal_and_str_show_major_units_exactly() -> None:
    assert Money(249, "EUR").decimal == Decimal("2.49")
    assert Money(100, "JPY").decimal == Decimal("100")
    assert str(Money(249, "EUR")) == "2.49 EUR"
    assert str(Money(-5, "EUR")) == "-0.05 EUR"


# --- formatting (babel) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "locale", "shown"),
    [
        (Money(249, "EUR"), "en_US", "€2.49"),
        (Money(249, "EUR"), "de_DE", f"2,49{NBSP}€"),
        (Money(249, "EUR"), "ja_JP", "€2.49"),
        (Money(-249, "EUR"), "en_US", "-€2.49"),
        (Money(-249, "EUR"), "de_DE", f"-2,49{NBSP}€"),
        (Money(123450, "USD"), "en_US", "$1,234.50"),
        (Money(123450, "USD"), "de_DE", f"1.234,50{NBSP}$"),
        (Money(100, "JPY"), "en_US", "¥100"),
        (Money(100, "JPY"), "de_DE", f"100{NBSP}¥"),
        (Money(100, "JPY"), "ja_JP", "￥100"),  # U+FFE5, the full-width yen sign
        (Money(123456, "JPY"), "ja_JP", "￥123,456"),
    ],
)
def test_format_is_what_babel_gives_for_the_locale(money: Money, locale: str, shown: str) -> None:
    assert money.format(locale) == shown


def test_format_defaults_to_en_us() -> None:
    assert Money(249, "EUR").format() == "€2.49"


def test_format_of_a_zero_decimal_currency_shows_no_decimals() -> None:
    assert "." not in Money(100, "JPY").format("en_US")
    assert "," not in Money(100, "JPY").format("de_DE")


# --- round_half_up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Fraction(1, 2), 1),
        (Fraction(-1, 2), -1),
        (Fraction(3, 2), 2),
        (Fraction(-3, 2), -2),
        (Fraction(5, 2), 3),  # not banker's rounding (which gives 2)
        (Fraction(-5, 2), -3),
        (Fraction(2499, 1000), 2),
        (Fraction(-2499, 1000), -2),
        (Fraction(2501, 1000), 3),
        (Fraction(-2501, 1000), -3),
        (Fraction(0), 0),
        (Fraction(7), 7),
        (Fraction(-7), -7),
        (Fraction(1, 3), 0),
        (Fraction(-1, 3), 0),
    ],
)
def test_round_half_up_rounds_halves_away_from_zero(value: Fraction, rounded: int) -> None:
    assert round_half_up(value) == rounded


@settings(max_examples=100, deadline=None)
@given(st.fractions(max_denominator=10_000).filter(lambda f: abs(f) < 10**9))
def test_round_half_up_is_nearest_and_symmetric(value: Fraction) -> None:
    rounded = round_half_up(value)
    assert abs(value - rounded) <= Fraction(1, 2)
    assert round_half_up(-value) == -rounded
    if abs(value - rounded) == Fraction(1, 2):
        assert abs(rounded) > abs(value)  # a half goes away from zero
