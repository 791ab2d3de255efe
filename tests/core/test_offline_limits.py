"""Offline card limits: the total and the age keep card off once reached; the per-payment
cap cannot refuse in advance, so it flags; 0 accepts no offline approval; the [payments]
settings validate and default."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from appliance.core.offline_limits import (
    TOO_OLD,
    TOTAL_REACHED,
    OfflineLimits,
    age_limit_at,
    offline_block,
    offline_cap,
    over_cap,
)
from appliance.errors import ConfigError
from appliance.settings import PaymentSettings, parse_settings

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
DEFAULTS = OfflineLimits()  # 50.00 each, 250.00 in all, 24 h


@dataclass(frozen=True)
class Usage:
    """An OfflineUsage as the journal reports it."""

    count: int
    amount: int
    oldest: datetime | None


def ago(hours: float) -> datetime:
    """A moment `hours` before NOW."""
    return NOW - timedelta(hours=hours)


@pytest.mark.parametrize(
    ("usage", "limits", "reason"),
    [
        (Usage(0, 0, None), DEFAULTS, ""),
        (Usage(1, 4_500, ago(1)), DEFAULTS, ""),
        (Usage(5, 24_999, ago(23.9)), DEFAULTS, ""),
        (Usage(6, 25_000, ago(1)), DEFAULTS, TOTAL_REACHED),
        (Usage(2, 31_000, ago(1)), DEFAULTS, TOTAL_REACHED),
        (Usage(1, 100, ago(24)), DEFAULTS, TOO_OLD),
        (Usage(1, 100, ago(30)), DEFAULTS, TOO_OLD),
        (Usage(9, 90_000, ago(30)), DEFAULTS, TOTAL_REACHED),  # the total is named first
        # 0 accepts none: one offline approval stops card until it is submitted.
        (Usage(1, 1, ago(0)), OfflineLimits(max_total=0), TOTAL_REACHED),
        (Usage(1, 1, NOW), OfflineLimits(max_age=timedelta(0)), TOO_OLD),
        (Usage(0, 0, None), OfflineLimits(0, 0, timedelta(0)), ""),
        # The per-payment cap never keeps card off: it cannot refuse in advance.
        (Usage(1, 9_000, ago(1)), OfflineLimits(max_per_payment=0), ""),
    ],
)
def test_offline_block_names_the_limit_reached(
    usage: Usage, limits: OfflineLimits, reason: str
) -> None:
    assert offline_block(usage, limits, NOW) == reason


@pytest.mark.parametrize(
    ("amount", "limits", "flagged"),
    [
        (4_999, DEFAULTS, False),
        (5_000, DEFAULTS, False),
        (5_001, DEFAULTS, True),
        (1, OfflineLimits(max_per_payment=0), True),
    ],
)
def test_an_offline_approval_above_the_per_payment_cap_is_flagged(
    amount: int, limits: OfflineLimits, flagged: bool
) -> None:
    assert over_cap(amount, limits) is flagged


@pytest.mark.parametrize(
    ("usage", "cap"),
    [
        (None, 5_000),
        (Usage(0, 0, None), 5_000),
        (Usage(4, 22_000, ago(1)), 3_000),
        (Usage(6, 25_000, ago(1)), 0),
        (Usage(6, 40_000, ago(1)), 0),
    ],
)
def test_offline_cap_is_the_per_payment_cap_within_what_is_left_of_the_total(
    usage: Usage | None, cap: int
) -> None:
    assert offline_cap(DEFAULTS, usage) == cap


def test_the_age_limit_falls_due_a_max_age_after_the_oldest() -> None:
    assert age_limit_at(Usage(0, 0, None), DEFAULTS) is None
    assert age_limit_at(Usage(2, 900, ago(3)), DEFAULTS) == ago(3) + timedelta(hours=24)


def test_limits_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        OfflineLimits(max_total=-1)
    with pytest.raises(ValueError, match="negative"):
        OfflineLimits(max_age=timedelta(hours=-1))


def test_the_payments_settings_default_and_convert_to_limits() -> None:
    settings = parse_settings({"device": {"id": "kiosk-1"}})
    assert settings.payments == PaymentSettings()
    payments = settings.payments
    assert (
        payments.offline_max_per_payment,
        payments.offline_max_total,
        payments.offline_max_age_hours,
    ) == (5_000, 25_000, 24.0)
    limits = OfflineLimits.of(2_000, 0, 1.5)
    assert limits == OfflineLimits(2_000, 0, timedelta(minutes=90))


def test_the_payments_settings_accept_zero_and_refuse_negatives() -> None:
    table = {"offline_max_per_payment": 0, "offline_max_total": 0, "offline_max_age_hours": 0}
    zero = parse_settings({"device": {"id": "kiosk-1"}, "payments": table}).payments
    assert zero == PaymentSettings(
        offline_max_per_payment=0, offline_max_total=0, offline_max_age_hours=0
    )
    with pytest.raises(ConfigError, match=r"payments\.offline_max_total"):
        parse_settings({"device": {"id": "kiosk-1"}, "payments": {"offline_max_total": -5}})
    with pytest.raises(ConfigError, match=r"payments\.offline_max_cents: unknown key"):
        parse_settings({"device": {"id": "kiosk-1"}, "payments": {"offline_max_cents": 5}})
