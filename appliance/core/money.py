"""Money as integer minor units of an ISO 4217 currency; never float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cache

from babel.numbers import format_currency, get_currency_precision, is_currency

# Plain decimal notation only: Decimal() would also take "1e3", "1_000", "NaN" and non-ASCII
# digits, none of which an operator or a catalog file means as an amount.
_AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)


@cache
def currency_exponent(currency: str) -> int:
    """Number of minor-unit digits of a currency (EUR 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(currency))


def is_known_currency(code: str) -> bool:
    """True when `code` is an ISO 4217 currency that babel knows."""
    return len(code) == 3 and code.isupper() and bool(is_currency(code))


def round_half_up(value: Fraction) -> int:
    """Round to the nearest integer, halves away from zero (commercial rounding)."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    if 2 * rest >= value.denominator:
        whole += 1
    return whole if value >= 0 else -whole


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (cents) of one ISO 4217 currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:  # bool and float are refused on purpose
            raise TypeError(f"money needs integer minor units, got {self.minor!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Nothing, in `currency`."""
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a decimal string like "2.49" exactly; refuse more digits than the currency has."""
        stripped = text.strip()
        digits = currency_exponent(currency)
        whole, _, fraction = stripped.partition(".")
        plain_fraction = not fraction or (fraction.isdigit() and fraction.isascii())
        if whole.isdigit() and whole.isascii() and len(fraction) <= digits and plain_fraction:
            # The common case ("2.49"), exact and fast: imports parse 100,000 prices.
            minor = int(whole) * 10**digits + int(fraction.ljust(digits, "0") or "0")
            return cls(minor, currency)
        if not _AMOUNT.fullmatch(stripped):
            raise ValueError(f"{text!r} is not a plain decimal amount")
        # Integer arithmetic on the validated digits is exact (and fast: imports parse
        # 100,000 prices); Decimal would round to its 28-digit context first.
        sign = -1 if stripped.startswith("-") else 1
        whole, _, fraction = stripped.lstrip("+-").partition(".")
        kept, extra = fraction[:digits], fraction[digits:]
        if extra.strip("0"):
            raise ValueError(f"{text!r} has more than {digits} decimal places for {currency}")
        minor = int(whole or "0") * 10**digits + int(kept.ljust(digits, "0") or "0")
        return cls(sign * minor, currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    # Ordering is written out because a generated order would compare minor units first and
    # silently rank 100 JPY against 2.00 EUR.
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return self.minor >= other.minor

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def times(self, factor: int) -> Money:
        """This amount multiplied by a whole number."""
        return Money(self.minor * factor, self.currency)

    def scaled(self, numerator: int, denominator: int) -> Money:
        """This amount times numerator/denominator, rounded half up to a minor unit."""
        return Money(round_half_up(Fraction(self.minor * numerator, denominator)), self.currency)

    @property
    def decimal(self) -> Decimal:
        """The amount in major units, exactly."""
        return Decimal(self.minor).scaleb(-currency_exponent(self.currency))

    def format(self, locale: str = "en_US") -> str:
        """The amount as a person in `locale` expects to read it (babel)."""
        return str(format_currency(self.decimal, self.currency, locale=locale))

    def __str__(self) -> str:
        return f"{self.decimal} {self.currency}"
