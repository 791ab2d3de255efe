"""The till's status screen has a line for offline card payments: how many, how much, how old,
against the [payments] limits; red once they keep card off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from appliance.core.offline_limits import OfflineLimits
from appliance.screens.i18n import Translator
from appliance.screens.staff.status_presenter import age_text, offline_cards_row

# Its own translator (English, en_US): the app's shared `tr` may be German after another test.
tr = Translator()

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Usage:
    """An OfflineUsage as the journal reports it."""

    count: int
    amount: int
    oldest: datetime | None


def test_the_line_shows_count_amount_age_and_the_limits() -> None:
    row = offline_cards_row(
        tr, Usage(2, 4_500, NOW - timedelta(hours=3, minutes=20)), OfflineLimits(), "EUR", NOW
    )
    assert row == {
        "label": "Offline card payments",
        "value": "2, €45.00, oldest 3 h (limit €250.00 / 24 h)",
        "state": "degraded",
    }


def test_none_waiting_is_fine() -> None:
    row = offline_cards_row(tr, Usage(0, 0, None), OfflineLimits(), "EUR", NOW)
    assert row["value"] == "None (limit €250.00 / 24 h)"
    assert row["state"] == "ok"


def test_past_a_limit_the_line_says_card_is_paused_in_red() -> None:
    limits = OfflineLimits(max_total=10_000, max_age=timedelta(hours=12))
    at_total = offline_cards_row(
        tr, Usage(3, 10_000, NOW - timedelta(minutes=5)), limits, "EUR", NOW
    )
    assert at_total["value"] == "Card paused: 3, €100.00, oldest 5 min (limit €100.00 / 12 h)"
    assert at_total["state"] == "offline"
    too_old = offline_cards_row(tr, Usage(1, 900, NOW - timedelta(hours=13)), limits, "EUR", NOW)
    assert too_old["value"].startswith("Card paused: 1, €9.00, oldest 13 h")
    assert too_old["state"] == "offline"


def test_an_unreadable_journal_is_said_so() -> None:
    row = offline_cards_row(tr, None, OfflineLimits(), "EUR", NOW)
    assert row == {
        "label": "Offline card payments",
        "value": "Could not be read",
        "state": "degraded",
    }


def test_ages_are_minutes_under_an_hour_then_whole_hours() -> None:
    assert age_text(tr, timedelta(seconds=59)) == "0 min"
    assert age_text(tr, timedelta(minutes=59)) == "59 min"
    assert age_text(tr, timedelta(minutes=61)) == "1 h"
    assert age_text(tr, timedelta(hours=30)) == "30 h"
