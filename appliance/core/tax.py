"""Sales tax: rates in basis points, tax-inclusive or -exclusive prices, stated rounding.

The rounding rule (also in docs/tax.md):
- Tax is computed exactly as a fraction, then rounded half away from zero to a minor unit.
- Inclusive prices (EU): tax = gross * rate / (10000 + rate); net = gross - tax.
- Exclusive prices (US): tax = net * rate / 10000; gross = net + tax.
- `rounding = "line"` rounds each line's tax and adds the results per rate;
  `rounding = "total"` adds the lines per rate first and rounds once per rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from appliance.core.money import round_half_up

Rounding = Literal["line", "total"]
BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class TaxPolicy:
    """A store's tax rules: rate per tax class, price convention and rounding."""

    rates: tuple[tuple[str, int], ...]
    prices_include_tax: bool = True
    rounding: Rounding = "line"

    def __post_init__(self) -> None:
        # Anything but "line" would otherwise silently mean per-total rounding.
        if self.rounding not in ("line", "total"):
            raise ValueError(f"tax rounding must be 'line' or 'total', not {self.rounding!r}")
        for name, rate in self.rates:
            if type(rate) is not int or rate < 0:
                raise ValueError(
                    f"tax class {name!r} needs a whole, non-negative rate, not {rate!r}"
                )

    @classmethod
    def of(
        cls,
        rates: Mapping[str, int],
        *,
        prices_include_tax: bool = True,
        rounding: Rounding = "line",
    ) -> TaxPolicy:
        """Build a policy from a {tax class: basis points} mapping."""
        return cls(tuple(sorted(rates.items())), prices_include_tax, rounding)

    def rate_of(self, tax_class: str) -> int:
        """The rate of a tax class in basis points; KeyError names the unknown class."""
        for name, rate in self.rates:
            if name == tax_class:
                return rate
        raise KeyError(f"unknown tax class {tax_class!r}")

    def tax_on(self, amount: int, rate: int) -> int:
        """The tax contained in (inclusive) or added to (exclusive) one amount, rounded."""
        if self.prices_include_tax:
            return round_half_up(Fraction(amount * rate, BASIS_POINTS + rate))
        return round_half_up(Fraction(amount * rate, BASIS_POINTS))


@dataclass(frozen=True, slots=True)
class TaxLine:
    """Net, tax and gross of every line of one tax class, in minor units."""

    tax_class: str
    rate: int
    net: int
    tax: int
    gross: int


@dataclass(frozen=True, slots=True)
class TaxBreakdown:
    """Taxes of a document grouped by tax class, with totals."""

    lines: tuple[TaxLine, ...]

    @property
    def net(self) -> int:
        """Sum of net amounts."""
        return sum(line.net for line in self.lines)

    @property
    def tax(self) -> int:
        """Sum of taxes."""
        return sum(line.tax for line in self.lines)

    @property
    def gross(self) -> int:
        """Sum of gross amounts: what the customer pays."""
        return sum(line.gross for line in self.lines)


def compute_taxes(policy: TaxPolicy, amounts: Iterable[tuple[str, int]]) -> TaxBreakdown:
    """Group (tax class, amount as priced) pairs by class and compute their taxes."""
    priced: dict[str, int] = {}
    taxes: dict[str, int] = {}
    for tax_class, amount in amounts:
        rate = policy.rate_of(tax_class)
        priced[tax_class] = priced.get(tax_class, 0) + amount
        if policy.rounding == "line":
            taxes[tax_class] = taxes.get(tax_class, 0) + policy.tax_on(amount, rate)
    lines = []
    for tax_class in sorted(priced):
        rate = policy.rate_of(tax_class)
        amount = priced[tax_class]
        tax = taxes[tax_class] if policy.rounding == "line" else policy.tax_on(amount, rate)
        if policy.prices_include_tax:
            lines.append(TaxLine(tax_class, rate, amount - tax, tax, amount))
        else:
            lines.append(TaxLine(tax_class, rate, amount, tax, amount + tax))
    return TaxBreakdown(tuple(lines))
