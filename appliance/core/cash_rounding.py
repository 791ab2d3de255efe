"""Cash rounding: the cash part of a payment rounded to the smallest coin (CHF to 0.05).

The rule (also in docs/cash.md):
- Only cash is rounded; card and stored value pay to the minor unit.
- The document's total (and its tax) stays exact; the cash tender pays the cash part
  rounded to the nearest multiple of the increment, halves away from zero, and the
  difference is kept on the document as `rounding` (positive: the customer paid more).
- The cash part is what is left of the total after every other tender.
- Refunds in cash are rounded the same way; a void reverses the sale's rounding exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from appliance.core.money import round_half_up
from appliance.core.tender import Tender


def round_cash(amount: int, increment: int) -> int:
    """`amount` rounded to the nearest multiple of `increment` (0 or 1: unchanged)."""
    if increment < 0:
        raise ValueError(f"a cash rounding increment cannot be negative, not {increment}")
    if increment <= 1:
        return amount
    return round_half_up(Fraction(amount, increment)) * increment


def cash_due(remaining: int, increment: int) -> int:
    """What cash pays for `remaining` (the total less every other tender), rounded."""
    return round_cash(remaining, increment)


def rounding_of(tenders: Sequence[Tender], total: int, increment: int) -> int:
    """The rounding a document paid by `tenders` carries: 0 unless cash pays a part of it."""
    if not any(t.kind == "cash" for t in tenders):
        return 0
    cash_part = total - sum(t.amount for t in tenders if t.kind != "cash")
    return round_cash(cash_part, increment) - cash_part
