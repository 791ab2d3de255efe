"""Telemetry history: a point per report, bounded per device by count and by age."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from peewee import Database

from hub import telemetry_history
from hub.telemetry_history import KEEP_DAYS, TelemetryPoint, history, record
from tests.hub.dashboard.seeding import telemetry

T0 = datetime(2026, 3, 1, 8, 0)


def test_each_device_keeps_its_newest_points_up_to_the_bound(
    dash_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_history, "KEEP_POINTS", 5)
    for minute in range(8):
        at = T0 + timedelta(minutes=minute)
        record(dash_db, "kiosk-1", telemetry("kiosk-1", minute), at)
        record(dash_db, "kiosk-2", telemetry("kiosk-2", 100 + minute, printer="offline"), at)
    one = history(dash_db, "kiosk-1", T0)
    assert [p.outbox_depth for p in one] == [3, 4, 5, 6, 7]
    two = history(dash_db, "kiosk-2", T0 + timedelta(minutes=6))
    assert [(p.outbox_depth, p.devices_not_ok) for p in two] == [(106, 1), (107, 1)]


def test_points_older_than_the_age_bound_are_dropped(dash_db: Database) -> None:
    record(dash_db, "kiosk-1", telemetry("kiosk-1", 1), T0)
    record(dash_db, "kiosk-1", telemetry("kiosk-1", 2), T0 + timedelta(days=KEEP_DAYS - 1))
    assert TelemetryPoint.select().count(dash_db) == 2
    record(dash_db, "kiosk-1", telemetry("kiosk-1", 3), T0 + timedelta(days=KEEP_DAYS, hours=1))
    kept = history(dash_db, "kiosk-1", T0 - timedelta(days=1))
    assert [p.outbox_depth for p in kept] == [2, 3]
    assert kept[0].cpu_temp_c == pytest.approx(48.5)
