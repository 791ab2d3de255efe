"""Offline card limits: when card approvals the bank has not seen yet keep card off.

A terminal that cannot reach its host may approve a card payment offline (or defer it)
and submit it later, usually at its End-of-Day. Until then the charge is a promise: a
card that turns out blocked or empty is the merchant's loss. So, as Square, Shopify and
Stripe Terminal do, the appliance bounds what it holds that way:

- the total of the offline approvals not yet submitted (`max_total`),
- the age of the oldest of them (`max_age`),
- and each one (`max_per_payment`).

The terminal decides by itself whether a payment goes offline; the appliance learns it
only from the answer. So the first two keep card off once they are reached (nothing new
can add to them), while the third cannot refuse anything in advance: an offline approval
above it stands (the card is charged), is flagged (`over_cap`) and counts towards the
total like any other. A limit of 0 accepts no offline approval: one such approval stops
card until the terminal submits it, or is flagged.

Pure rules: no clock, no disk; `now` and the usage are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from appliance.core.events import Event
from appliance.core.texts import N_

TOTAL_REACHED = N_("Card payments are paused: offline card payments are waiting to be sent")
TOO_OLD = N_("Card payments are paused: an offline card payment has waited too long to be sent")


@dataclass(frozen=True, slots=True)
class OfflineSubmitted(Event):
    """The terminal's End-of-Day submitted its offline approvals, and the journal says so.

    Posted by whoever ran the End-of-Day, after `PaymentAttempts.submitted_offline()`.
    """

    count: int  # how many offline approvals the journal marked submitted


class OfflineUsageLike(Protocol):
    """Offline approvals not yet submitted: how many, how much (minor units), the oldest."""

    @property
    def count(self) -> int:
        """How many."""
        ...

    @property
    def amount(self) -> int:
        """Their total, minor units."""
        ...

    @property
    def oldest(self) -> datetime | None:
        """When the oldest was started (timezone-aware); None when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class OfflineLimits:
    """The limits on offline approvals; amounts in minor units, 0 accepts none."""

    max_per_payment: int = 5_000
    max_total: int = 25_000
    max_age: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.max_per_payment < 0 or self.max_total < 0 or self.max_age < timedelta(0):
            raise ValueError("offline limits cannot be negative")

    @classmethod
    def of(cls, max_per_payment: int, max_total: int, max_age_hours: float) -> OfflineLimits:
        """From the settings' figures (the [payments] table)."""
        return cls(max_per_payment, max_total, timedelta(hours=max_age_hours))


def offline_block(usage: OfflineUsageLike, limits: OfflineLimits, now: datetime) -> str:
    """Why offline approvals keep card off now, in words for the customer; "" when they do not."""
    if usage.count <= 0:
        return ""
    if usage.amount >= limits.max_total:
        return TOTAL_REACHED
    if usage.oldest is not None and now - usage.oldest >= limits.max_age:
        return TOO_OLD
    return ""


def offline_cap(limits: OfflineLimits, usage: OfflineUsageLike | None = None) -> int:
    """The most one more offline approval may be within the limits, minor units.

    The per-payment cap, and with `usage`, no more than what is left of the total.
    """
    if usage is None:
        return limits.max_per_payment
    return max(0, min(limits.max_per_payment, limits.max_total - usage.amount))


def over_cap(amount: int, limits: OfflineLimits) -> bool:
    """True when an offline approval of `amount` is above the per-payment cap (it stands)."""
    return amount > limits.max_per_payment


def age_limit_at(usage: OfflineUsageLike, limits: OfflineLimits) -> datetime | None:
    """When the age limit will keep card off if nothing is submitted first; None if never."""
    if usage.count <= 0 or usage.oldest is None:
        return None
    return usage.oldest + limits.max_age
