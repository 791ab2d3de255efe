"""How a sale is paid: cash, card and stored value, split across several tenders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from appliance.errors import TenderError

TenderKind = Literal["cash", "card", "stored_value"]
TENDER_KINDS: tuple[TenderKind, ...] = ("cash", "card", "stored_value")


@dataclass(frozen=True, slots=True)
class Tender:
    """One payment: `amount` settles the sale; cash may be handed over in excess (`tendered`)."""

    kind: TenderKind
    amount: int
    tendered: int = 0  # cash handed over; 0 means exactly `amount`
    reference: str = ""  # terminal or stored-value reference
    card_mask: str = ""  # masked card number only, e.g. "**** 1234"

    def __post_init__(self) -> None:
        if self.kind not in TENDER_KINDS:
            raise TenderError(f"unknown tender {self.kind!r}")
        if self.tendered and self.kind != "cash":
            raise TenderError("only cash can be handed over in excess and give change")
        if self.tendered and abs(self.tendered) < abs(self.amount):
            raise TenderError("cash handed over is less than the amount it settles")
        digits = sum(ch.isdigit() for ch in self.card_mask)
        if digits > 4:
            raise TenderError("a card number may only be stored masked (last 4 digits)")

    @classmethod
    def cash(cls, handed_over: int, due: int) -> Tender:
        """Cash for what is still `due`: settles at most that and gives the rest as change."""
        if handed_over <= 0:
            raise TenderError("cash handed over must be positive")
        return cls("cash", min(handed_over, due), tendered=handed_over)

    @property
    def change(self) -> int:
        """Cash given back."""
        return self.tendered - self.amount if self.tendered else 0

    def negated(self) -> Tender:
        """The same payment going back to the customer."""
        return Tender(self.kind, -self.amount, 0, self.reference, self.card_mask)


def check_settles(tenders: Sequence[Tender], total: int, rounding: int = 0) -> None:
    """Raise TenderError unless the tenders pay exactly `total` plus the cash `rounding`.

    Change aside; only a document with a cash tender may carry a rounding (card pays exact).
    """
    if rounding and not any(t.kind == "cash" for t in tenders):
        raise TenderError("only cash is rounded; card and stored value pay the exact total")
    due = total + rounding
    if due != 0 and not tenders:
        raise TenderError("no payment")
    for tender in tenders:
        if tender.amount == 0 or (tender.amount > 0) != (total > 0):
            raise TenderError(f"a {tender.kind} tender of {tender.amount} does not fit this total")
    paid = sum(t.amount for t in tenders)
    if paid != due:
        rounded = f" ({total} rounded by {rounding} in cash)" if rounding else ""
        raise TenderError(f"tenders pay {paid} of {due}{rounded}")
