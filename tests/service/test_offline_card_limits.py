"""Offline card limits at run time: an offline approval past the total turns card off with the
reason, an End-of-Day's submission turns it back on, the age limit turns it off by itself,
and the gate's question never reads the disk on the main loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest

from appliance.core.card_payment import CardAnswered, CardAvailability
from appliance.core.events import EventBus
from appliance.core.offline_limits import (
    TOO_OLD,
    TOTAL_REACHED,
    OfflineLimits,
    OfflineSubmitted,
)
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.service.after_sale import AfterSale
from appliance.service.assembly import Appliance
from appliance.service.offline_card_limits import CHECKING, OfflineCardLimits
from appliance.store.database import open_database
from appliance.store.migrations import migrate
from appliance.store.payment_attempts import OfflineUsage, PaymentAttempts

WAIT_SECONDS = 10.0


def wait_until(done: Callable[[], object], what: str, bus: EventBus | None = None) -> None:
    """Poll `done()` (draining the bus, as the main loop does); fail after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        if bus is not None:
            bus.drain()
        time.sleep(0.02)


def approve(
    journal: PaymentAttempts, reference: str, amount: int, *, offline: bool
) -> CardAnswered:
    """Journal one approved card payment as a terminal answers it; its CardAnswered."""
    request = PaymentRequest(amount, "EUR", reference)
    journal.begin(request, None)
    result = PaymentResult(
        "approved",
        reference,
        masked_card="**** 1234",
        amount=amount,
        offline=offline,
        receipt_number=reference[-4:],
    )
    journal.answered(request, result)
    return CardAnswered(request, result)


def test_an_offline_approval_past_the_total_turns_card_off_until_submitted(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, _after = till
    gate, journal, bus = app.card_gate, app.stores.payments, app.bus
    assert gate is not None
    gate.wait(WAIT_SECONDS)
    wait_until(lambda: gate.availability.offered, "card offered at start", bus)
    seen: list[CardAvailability] = []
    bus.subscribe(CardAvailability, seen.append)

    # 200.00 offline stays within the default 250.00 total.
    bus.post(approve(journal, "sim-0001-a1", 20_000, offline=True))
    bus.post(approve(journal, "sim-0001-a2", 9_000, offline=False))  # online: not counted
    bus.drain()
    time.sleep(0.2)
    bus.drain()
    assert gate.availability.offered

    bus.post(approve(journal, "sim-0001-a3", 5_000, offline=True))  # 250.00: reached
    wait_until(lambda: not gate.availability.offered, "card off at the total", bus)
    bus.drain()  # the gate's own CardAvailability, posted as its answer changed
    assert gate.availability.reason == TOTAL_REACHED
    assert seen[-1] == CardAvailability(False, TOTAL_REACHED)
    assert journal.offline_usage().amount == 25_000

    assert journal.submitted_offline() == 2  # the terminal's End-of-Day sent them
    bus.post(OfflineSubmitted(2))
    wait_until(lambda: gate.availability.offered, "card back after the End-of-Day", bus)
    bus.drain()
    assert seen[-1] == CardAvailability(True)


@pytest.fixture
def journal(tmp_path: Path) -> PaymentAttempts:
    """An empty, migrated payment journal."""
    db = open_database(tmp_path / "appliance.db")
    migrate(db)
    return PaymentAttempts(db)


class FixedClock:
    """A clock standing at `at`."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The set time."""
        return self.at

    def monotonic(self) -> float:
        """Unused here."""
        return 0.0


def test_the_age_limit_refreshes_the_gate_by_itself(journal: PaymentAttempts) -> None:
    bus = EventBus()
    approve(journal, "k-1", 1_000, offline=True)
    started = journal.offline_usage().oldest
    assert started is not None
    # The oldest approval turns 1 h old in a third of a second from the clock's point of view.
    clock = FixedClock(started + timedelta(hours=1) - timedelta(seconds=0.3))
    limits = OfflineCardLimits(journal, OfflineLimits(max_age=timedelta(hours=1)), bus, clock=clock)
    refreshed = threading.Event()
    limits.attach(refreshed.set)
    limits.reload().result(WAIT_SECONDS)
    assert limits.reason() == ""
    refreshed.clear()
    clock.at += timedelta(seconds=1)
    assert refreshed.wait(WAIT_SECONDS), "the age limit's timer never refreshed the gate"
    assert limits.reason() == TOO_OLD
    limits.close()
    limits.close()


def test_the_main_loop_never_waits_for_the_first_read(journal: PaymentAttempts) -> None:
    bus = EventBus()
    limits = OfflineCardLimits(journal, OfflineLimits(), bus)
    with mock.patch.object(journal, "offline_usage", side_effect=AssertionError("no disk here")):
        started = time.monotonic()
        assert limits.reason() == CHECKING  # nothing read yet: card stays off meanwhile
        assert time.monotonic() - started < 1.0
    limits.reload().result(WAIT_SECONDS)
    with mock.patch.object(journal, "offline_usage", side_effect=AssertionError("no disk here")):
        assert limits.reason() == ""
    assert limits.usage == OfflineUsage(0, 0, None)


def test_a_worker_waits_for_the_first_read(journal: PaymentAttempts) -> None:
    approve(journal, "k-1", 30_000, offline=True)
    limits = OfflineCardLimits(journal, OfflineLimits(), EventBus())
    answers: list[str] = []
    asker = threading.Thread(target=lambda: answers.append(limits.reason()))
    asker.start()
    limits.reload()
    asker.join(WAIT_SECONDS)
    assert answers == [TOTAL_REACHED]


def test_an_offline_approval_above_the_per_payment_cap_stands_and_is_flagged(
    journal: PaymentAttempts, caplog: pytest.LogCaptureFixture
) -> None:
    bus = EventBus()
    limits = OfflineCardLimits(journal, OfflineLimits(), bus)
    bus.post(approve(journal, "k-big", 7_500, offline=True))
    bus.post(approve(journal, "k-small", 2_000, offline=True))
    bus.post(approve(journal, "k-online", 9_900, offline=False))
    with caplog.at_level("WARNING"):
        bus.drain()
    limits.reload().result(WAIT_SECONDS)
    assert limits.over_cap == 1
    assert "k-big of 7500 approved offline above the per-payment limit of 5000" in caplog.text
    usage = limits.usage
    assert usage is not None and (usage.count, usage.amount) == (2, 9_500)
    assert limits.reason() == ""


def test_an_unreadable_journal_keeps_card_off_with_why(journal: PaymentAttempts) -> None:
    from appliance.errors import StoreError

    limits = OfflineCardLimits(journal, OfflineLimits(), EventBus())
    with mock.patch.object(journal, "offline_usage", side_effect=StoreError("disk gone")):
        limits.reload().result(WAIT_SECONDS)
    assert limits.reason().startswith("Card payments are paused: offline card payments could")
    limits.reload().result(WAIT_SECONDS)
    assert limits.reason() == ""


def test_the_fixed_clock_is_utc() -> None:
    assert FixedClock(datetime(2026, 1, 1, tzinfo=UTC)).now().tzinfo is UTC
