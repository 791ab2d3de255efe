"""Offline rules of a hub-held stored-value card: known balance, unsettled debits, day limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appliance.core.card_balance import KnownCard, offline_refusal

KNOWN = KnownCard("ab" * 32, "EUR", 1000, 5, datetime(2030, 1, 1, tzinfo=UTC))


def refusal(amount: int, *, unsettled: int = 0, spent_today: int = 0, limit: int = 2000) -> str:
    """The rule for KNOWN in EUR."""
    return offline_refusal(
        KNOWN, amount, currency="EUR", unsettled=unsettled, spent_today=spent_today, limit=limit
    )


def test_a_known_card_pays_within_its_balance_and_the_limit() -> None:
    assert refusal(1000) == ""


def test_what_the_card_paid_offline_since_counts_against_its_known_balance() -> None:
    assert refusal(600, unsettled=500) == "insufficient balance"
    assert refusal(500, unsettled=500) == ""


def test_the_daily_limit_counts_every_offline_debit_of_the_day() -> None:
    assert refusal(300, spent_today=1800) == "offline limit"
    assert refusal(200, spent_today=1800) == ""
    assert refusal(1, limit=0) == "offline limit"  # 0: stored value only while the hub answers


@pytest.mark.parametrize(
    ("known", "currency", "amount", "reason"),
    [
        (None, "EUR", 100, "unknown card"),
        (KNOWN, "CHF", 100, "wrong currency"),
        (KNOWN, "EUR", 0, "a payment must be a positive amount"),
    ],
)
def test_a_card_never_seen_another_currency_or_no_amount_is_refused(
    known: KnownCard | None, currency: str, amount: int, reason: str
) -> None:
    assert (
        offline_refusal(known, amount, currency=currency, unsettled=0, spent_today=0, limit=2000)
        == reason
    )
