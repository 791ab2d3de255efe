"""The kiosk's shift follows its [till] hours; a staffed till sells only within a shift."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from peewee import SqliteDatabase

from appliance.core.events import EventBus
from appliance.core.reports import ReportMade, ShiftClosed
from appliance.core.shift import ShiftOpened
from appliance.service.assembly import Appliance
from appliance.service.kiosk_shift import KioskShift
from appliance.settings import parse_settings
from appliance.store.database import open_database
from appliance.store.migrations import migrate
from appliance.store.shifts import ShiftBook


class SetClock:
    """A clock that says what the test sets."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()


def at(hours: int, minutes: int = 0, day: int = 1) -> datetime:
    """A UTC moment on a day in July 2026."""
    return datetime(2026, 7, day, hours, minutes, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = open_database(tmp_path / "appliance.db")
    migrate(database)
    yield database
    database.close()


def kiosk(db: SqliteDatabase, clock: SetClock, opens: time, closes: time) -> KioskShift:
    shifts = ShiftBook(
        db, till="k1", currency="EUR", denominations=(100, 1), signoff_threshold=0, clock=clock
    )
    return KioskShift(shifts, open_at=opens, close_at=closes, clock=clock, tz=UTC)


def test_the_schedule_opens_and_closes_the_shift_with_its_z(db: SqliteDatabase) -> None:
    clock = SetClock(at(6))
    bus = EventBus()
    seen: list[object] = []
    for kind in (ShiftOpened, ShiftClosed, ReportMade):
        bus.subscribe(kind, seen.append)
    schedule = kiosk(db, clock, time(8), time(20))
    schedule._bus = bus
    assert schedule.tick() == "" and schedule.hours_reason().startswith("the kiosk is closed")
    clock.at = at(8)
    assert schedule.tick() == "opened"
    assert schedule.hours_reason() == ""
    assert schedule.tick() == ""
    clock.at = at(20, 1)
    assert schedule.tick() == "closed"
    assert schedule.tick() == ""
    clock.at = at(8, 0, day=2)
    assert schedule.tick() == "opened"
    bus.drain()
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["ShiftOpened", "ShiftClosed", "ReportMade", "ShiftOpened"]
    report = next(e for e in seen if isinstance(e, ReportMade)).report
    assert (report.kind, report.number, report.counted_cash) == ("z", 1, None)


def test_the_close_waits_for_a_sale_in_progress_but_not_for_ever(db: SqliteDatabase) -> None:
    clock = SetClock(at(19))
    busy = [True]
    schedule = kiosk(db, clock, time(8), time(20))
    schedule._busy = lambda: busy[0]
    schedule.tick()
    clock.at = at(20, 1)
    assert schedule.tick() == "waiting for the sale in progress"
    clock.at = at(20, 16)
    assert schedule.tick() == "closed"  # a cart left behind holds the Z no longer
    schedule._shifts.open("sue", {})
    clock.at = at(20, 1, day=2)
    assert schedule.tick() == "waiting for the sale in progress"
    busy[0] = False
    assert schedule.tick() == "closed"


def test_starting_within_the_hours_opens_at_once(db: SqliteDatabase) -> None:
    clock = SetClock(at(12))
    assert kiosk(db, clock, time(8), time(20)).tick() == "opened"


def test_a_shift_left_open_over_the_close_is_closed_at_the_next_start(db: SqliteDatabase) -> None:
    clock = SetClock(at(12))
    schedule = kiosk(db, clock, time(8), time(20))
    schedule.tick()
    clock.at = at(9, day=3)  # switched off for two days
    assert schedule.tick() == "closed and opened"


def test_a_supervisors_close_within_the_hours_stands(db: SqliteDatabase) -> None:
    clock = SetClock(at(9))
    schedule = kiosk(db, clock, time(8), time(20))
    schedule.tick()
    clock.at = at(10)
    schedule._shifts.close({}, "sue")
    clock.at = at(11)
    assert schedule.tick() == ""
    clock.at = at(12)
    schedule._shifts.open("sue", {100: 1})  # and a supervisor may open it again
    clock.at = at(20, 30)
    assert schedule.tick() == "closed"


def test_a_window_may_run_past_midnight(db: SqliteDatabase) -> None:
    clock = SetClock(at(23))
    schedule = kiosk(db, clock, time(18), time(2))
    assert schedule.in_hours(at(23)) and schedule.in_hours(at(1, day=2))
    assert not schedule.in_hours(at(3))
    assert schedule.tick() == "opened"
    clock.at = at(1, day=2)
    assert schedule.tick() == ""
    clock.at = at(2, 5, day=2)
    assert schedule.tick() == "closed"


def test_the_worker_ticks_until_closed(db: SqliteDatabase) -> None:
    clock = SetClock(at(12))
    schedule = kiosk(db, clock, time(8), time(20))
    schedule._interval = 0.01
    schedule.start()
    clock.at = at(21)
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while schedule._shifts.current() is not None and datetime.now(UTC) < deadline:
        pass
    schedule.close()
    schedule.close()
    assert schedule._shifts.current() is None


def appliance(tmp_path: Path, **sections: dict[str, object]) -> Appliance:
    data = {"device": {"id": "t1"}, "database": {"path": str(tmp_path / "a.db")}, **sections}
    return Appliance.open(parse_settings(data), clock=SetClock(at(12)))


def test_a_staffed_till_needs_an_open_shift(tmp_path: Path) -> None:
    app = appliance(tmp_path, screen={"mode": "staff"})
    try:
        assert app.checkout.shift_missing() == "no shift is open on this till"
        app.stores.shifts.open("ann", {})
        assert app.checkout.shift_missing() == ""
        assert app.kiosk_shift is None
    finally:
        app.close()


def test_a_kiosk_without_hours_sells_without_a_shift(tmp_path: Path) -> None:
    app = appliance(tmp_path)
    try:
        assert app.checkout.shift_missing() == "" and app.kiosk_shift is None
    finally:
        app.close()


def test_a_kiosk_with_hours_sells_within_them(tmp_path: Path) -> None:
    app = appliance(tmp_path, till={"kiosk_shift_open": "08:00", "kiosk_shift_close": "20:00"})
    try:
        assert app.kiosk_shift is not None
        assert "closed" in app.checkout.shift_missing()
        app.kiosk_shift._tz = UTC
        app.kiosk_shift.tick()
        assert app.checkout.shift_missing() == ""
    finally:
        app.close()
