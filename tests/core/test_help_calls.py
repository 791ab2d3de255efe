"""Calls for help: one per reason, urgency, the lifecycle and the attendant light."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from appliance.core.help_calls import REASONS, HelpCalls, light_for, urgency_of

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def calls() -> HelpCalls:
    ticks = itertools.count()
    ids = itertools.count(1)
    return HelpCalls(lambda: T0 + timedelta(seconds=next(ticks)), lambda: f"call-{next(ids)}")


@pytest.mark.parametrize("reason", REASONS)
def test_only_payment_in_doubt_and_paper_out_during_a_sale_are_urgent(reason: str) -> None:
    urgent = reason in ("payment_in_doubt", "paper_out")
    assert urgency_of(reason, sale_open=True) == ("urgent" if urgent else "help")  # type: ignore[arg-type]
    assert urgency_of(reason, sale_open=False) == "help"  # type: ignore[arg-type]


def test_a_second_call_for_the_same_reason_joins_the_open_one(calls: HelpCalls) -> None:
    first = calls.open("customer", sale_open=True)
    assert first is not None and first.state == "open" and first.urgency == "help"
    assert calls.open("customer", sale_open=True) is None
    assert [c.id for c in calls.active] == [first.id]


def test_calls_of_different_reasons_are_separate_and_oldest_first(calls: HelpCalls) -> None:
    calls.open("age_check", sale_open=True)
    calls.open("customer", sale_open=True)
    assert [c.reason for c in calls.active] == ["age_check", "customer"]


def test_open_answered_cleared_records_who_and_when(calls: HelpCalls) -> None:
    opened = calls.open("customer", sale_open=False)
    answered = calls.answer("customer", "Ana")
    assert answered is not None and opened is not None
    assert answered.state == "answered" and answered.by == "Ana" and answered.id == opened.id
    assert answered.answered_at is not None and answered.answered_at > opened.opened_at
    cleared = calls.clear("customer", "Ana")
    assert cleared is not None and cleared.state == "cleared" and cleared.cleared_at is not None
    assert not cleared.active and calls.active == ()
    assert calls.clear("customer", "Ana") is None
    assert calls.answer("customer", "Ana") is None


def test_a_new_call_after_clearing_gets_a_new_id(calls: HelpCalls) -> None:
    first = calls.open("customer", sale_open=False)
    calls.clear("customer", "Ana")
    second = calls.open("customer", sale_open=False)
    assert first is not None and second is not None and first.id != second.id


def test_paper_out_escalates_to_urgent_when_a_sale_opens(calls: HelpCalls) -> None:
    quiet = calls.open("paper_out", sale_open=False, detail="paper out")
    assert quiet is not None and quiet.urgency == "help"
    assert calls.light == "steady"
    loud = calls.open("paper_out", sale_open=True)
    assert loud is not None and loud.id == quiet.id and loud.urgency == "urgent"
    assert loud.detail == "paper out"
    assert calls.light == "flashing"


def test_the_light_is_off_steady_or_flashing(calls: HelpCalls) -> None:
    assert calls.light == "off"
    calls.open("customer", sale_open=True)
    assert calls.light == "steady"
    calls.open("payment_in_doubt", sale_open=True)
    assert calls.light == "flashing"
    calls.answer("payment_in_doubt", "Ana")  # someone is on the way: no more flashing
    assert calls.light == "steady"
    calls.clear_all("Ana")
    assert calls.light == "off"
    assert light_for([]) == "off"


def test_clear_all_keeps_what_a_badge_cannot_settle(calls: HelpCalls) -> None:
    calls.open("customer", sale_open=True)
    calls.open("payment_in_doubt", sale_open=True)
    cleared = calls.clear_all("Ana", keep=frozenset({"payment_in_doubt"}))
    assert [c.reason for c in cleared] == ["customer"]
    assert [c.reason for c in calls.active] == ["payment_in_doubt"]
