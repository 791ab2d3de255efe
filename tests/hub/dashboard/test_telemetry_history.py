"""Telemetry history: a point per report, bounded per device by count and by age."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from peewee import Database

from hub import telemetry_history
from hub.dashboard.pages import WINDOWS
from hub.telemetry_history import (
    KEEP_DAYS,
    KEEP_POINTS,
    TelemetryPoint,
    history,
    record,
    sweep,
)
from tests.hub.dashboard.seeding import telemetry

T0 = datetime(2026, 3, 1, 8, 0)


def test_each_device_keeps_its_newest_points_up_to_the_bound(
    dash_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_history, "KEEP_POINTS", 5)
    monkeypatch.setattr(telemetry_history, "TRIM_EVERY", 1)
    for minute in range(8):
        at = T0 + timedelta(minutes=minute)
        record(dash_db, "kiosk-1", telemetry("kiosk-1", minute), at)
        record(dash_db, "kiosk-2", telemetry("kiosk-2", 100 + minute, printer="offline"), at)
    one = history(dash_db, "kiosk-1", T0)
    assert [p.outbox_depth for p in one] == [3, 4, 5, 6, 7]
    two = history(dash_db, "kiosk-2", T0 + timedelta(minutes=6))
    assert [(p.outbox_depth, p.devices_not_ok) for p in two] == [(106, 1), (107, 1)]


def test_the_count_is_trimmed_now_and_then_not_on_every_report(
    dash_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_history, "KEEP_POINTS", 5)
    monkeypatch.setattr(telemetry_history, "TRIM_EVERY", 10)
    trims: list[str] = []
    trim = telemetry_history.trim
    monkeypatch.setattr(
        telemetry_history,
        "trim",
        lambda db, device, now: (trims.append(device), trim(db, device, now)),
    )
    # Two devices reporting in turn: each is still trimmed, about once per TRIM_EVERY.
    for minute in range(200):
        at = T0 + timedelta(minutes=minute)
        for device in ("kiosk-1", "kiosk-2"):
            record(dash_db, device, telemetry(device, minute), at)
    for device in ("kiosk-1", "kiosk-2"):
        assert 5 <= trims.count(device) <= 60, trims.count(device)
        kept = TelemetryPoint.select().where(TelemetryPoint.device == device).count(dash_db)
        assert kept < 200


def test_points_past_the_age_bound_are_swept_for_every_device(dash_db: Database) -> None:
    record(dash_db, "kiosk-1", telemetry("kiosk-1", 1), T0)
    record(dash_db, "kiosk-2", telemetry("kiosk-2", 1), T0)
    record(dash_db, "kiosk-1", telemetry("kiosk-1", 2), T0 + timedelta(days=KEEP_DAYS - 1))
    sweep(dash_db, T0 + timedelta(days=KEEP_DAYS - 1))
    assert TelemetryPoint.select().count(dash_db) == 3
    # kiosk-2 reports no more: its old point goes all the same.
    sweep(dash_db, T0 + timedelta(days=KEEP_DAYS, hours=1))
    kept = history(dash_db, "kiosk-1", T0 - timedelta(days=1))
    assert [p.outbox_depth for p in kept] == [2]
    assert kept[0].cpu_temp_c == pytest.approx(48.5)
    assert history(dash_db, "kiosk-2", T0 - timedelta(days=1)) == []


def test_the_points_kept_cover_the_longest_window_at_one_report_a_minute() -> None:
    longest = max(WINDOWS.values())
    assert longest <= timedelta(days=KEEP_DAYS)
    assert longest / timedelta(minutes=1) <= KEEP_POINTS
