"""Stored-value cards whose balance the hub holds: what the kiosk knows and may do offline.

Online, the hub decides every debit. When it cannot answer, the kiosk may still take a
debit from a card it has seen: within the balance the hub last told it, less what that
card paid here offline since (the hub has not counted that yet), and within a limit per
card and day. Such a debit is kept until the hub has taken it; the hub never refuses it,
and flags the card when another kiosk spent the same money meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KnownCard:
    """A card as the hub last described it to this kiosk (balance may be below zero)."""

    card: str  # the hashed UID
    currency: str
    balance: int  # minor units
    points: int
    known_at: datetime


@dataclass(frozen=True, slots=True)
class CardDebitResult:
    """A debit taken: online (the hub approved) or offline (pending at the hub)."""

    reference: str
    balance: int  # what the card holds now, as far as this kiosk knows
    points: int
    offline: bool


def offline_refusal(
    known: KnownCard | None,
    amount: int,
    *,
    currency: str,
    unsettled: int,
    spent_today: int,
    limit: int,
) -> str:
    """Why the kiosk may not take `amount` offline ("" when it may).

    `unsettled`: what the card paid here offline that the hub has not taken yet;
    `spent_today`: what it paid here offline today, settled or not.
    """
    if amount <= 0:
        return "a payment must be a positive amount"
    if known is None:
        return "unknown card"  # never seen here: no balance to pay from
    if known.currency != currency:
        return "wrong currency"
    if known.balance - unsettled < amount:
        return "insufficient balance"
    if spent_today + amount > limit:
        return "offline limit"
    return ""


class StoredValueLedger(Protocol):
    """Card balances the kiosk pays from; every method may block (a store, or the hub).

    Called on the store's writer thread, never the main thread. `debit` raises TenderError
    with the reason when the card cannot pay, and is idempotent by `reference`.
    """

    @property
    def currency(self) -> str:
        """The currency balances are kept in."""
        ...

    def balance(self, uid: str) -> int | None:
        """What the card can pay as far as this device knows; None when unknown."""
        ...

    def debit(self, uid: str, amount: int, reference: str) -> int:
        """Pay `amount` from the card; returns the balance left."""
        ...

    def credit_back(self, reference: str) -> None:
        """Give back a debit whose sale was not stored; nothing happens the second time."""
        ...

    def after(self, reference: str) -> CardDebitResult | None:
        """What the card held after the debit `reference` (receipts); None: not known here."""
        ...
