"""The dashboard's pages with a fleet in the database: what an admin reads on each.

Litestar's test client on the app `appliance-hub web` serves, on SQLite and PostgreSQL;
the fleet is written through the hub's own ingest and records (tests/hub/dashboard/seeding.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from peewee import Database

from appliance.mqtt.payloads import DeviceStatus
from hub.dashboard import views
from hub.fleet_keys import generate_fleet_keys
from hub.ingest import DeviceRecords, utc_naive
from hub.stock_levels import store_sales
from tests.hub.dashboard.conftest import Client, MakeClient, log_in
from tests.hub.dashboard.seeding import (
    EVIL_LINE,
    IMAGE,
    OUTBOX,
    SALES_DAY,
    START,
    STORE,
    seed,
    telemetry,
)


@pytest.fixture
def fleet_key(tmp_path: Path) -> Path:
    """A fleet signing key."""
    key, _ = generate_fleet_keys(tmp_path / "keys")
    return key


@pytest.fixture
def seeded(dash_db: Database, fleet_key: Path) -> str:
    """The seeded fleet; kiosk-1's lock job id."""
    return seed(dash_db, fleet_key)


@pytest.fixture
def client(web: MakeClient, admin: str, seeded: str) -> Client:
    """Logged in, on the seeded fleet; no key or broker given (sending is off)."""
    client = web()
    assert log_in(client).status_code == 303
    return client


def row_of(html: str, device: str) -> str:
    """The fleet table's row of one device."""
    found = re.search(rf'<tr data-device="{device}".*?</tr>', html, re.S)
    assert found, f"no row for {device}"
    return " ".join(found.group(0).split())


def test_the_fleet_page_shows_each_device_with_its_status_health_and_last_sale(
    client: Client,
) -> None:
    page = client.get("/fleet")
    assert page.status_code == 200
    assert "2 device(s), <strong>1</strong> online" in page.text
    one = row_of(page.text, "kiosk-1")
    assert 'data-online="yes"' in one and ">online<" in one
    for shown in ("2.1.0", f">{OUTBOX[-1]}<", "v4", "printer p1: degraded (paper low)",
                  "€2.50", "sale", f">{STORE}<"):  # fmt: skip
        assert shown in one, shown
    two = row_of(page.text, "kiosk-2")
    assert 'data-online="no"' in two and ">offline<" in two and "no telemetry yet" in two
    # The refreshed part alone, and the store filter.
    rows = client.get("/fleet/rows")
    assert "<html" not in rows.text and 'data-device="kiosk-1"' in rows.text
    assert 'data-device="kiosk-1"' in client.get(f"/fleet?store={STORE}").text
    elsewhere = client.get("/fleet/rows?store=hamburg").text
    assert "kiosk-1" not in elsewhere and "0 device(s) in hamburg" in elsewhere


def test_the_device_page_charts_its_telemetry_and_shows_jobs_logs_and_configuration(
    client: Client, seeded: str
) -> None:
    page = client.get("/devices/kiosk-1?window=6h")
    assert page.status_code == 200
    text = page.text
    # A chart per series, drawn on the server: one line through every report.
    assert text.count('<svg class="chart"') == 4
    (outbox,) = re.findall(r'aria-label="Outbox depth over time".*?</svg>', text, re.S)
    (line,) = re.findall(r'<polyline class="line" points="([^"]+)"', outbox)
    assert len(line.split()) == len(OUTBOX)
    assert f"{len(OUTBOX)} report(s)" in text
    # The job and its lifecycle, the logs (escaped), the configuration.
    job = re.search(rf'<tr data-job="{seeded}".*?</tr>', text, re.S)
    assert job and "SENT &gt; QUEUED &gt; IN_PROGRESS &gt; SUCCEEDED" in job.group(0)
    assert 'data-state="SUCCEEDED"' in job.group(0) and "locked" in job.group(0)
    assert "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;" in text
    assert EVIL_LINE not in text
    assert "Configuration: in force" in text and "idle_seconds" in text
    # Sending is off without a key: the page says why instead of offering buttons.
    assert "No fleet key" in text and 'name="command"' not in text

    live = client.get("/devices/kiosk-1/live")
    assert "<html" not in live.text and f'data-job="{seeded}"' in live.text
    missing = client.get("/devices/nobody")
    assert missing.status_code == 404 and "Unknown device" in missing.text


LOCKED = '<span class="badge locked"'


def heading(html: str) -> str:
    """The device page's heading."""
    found = re.search(r"<h1>.*?</h1>", html, re.S)
    assert found, "no heading"
    return found.group(0)


def test_each_device_shows_its_image_beside_the_firmware_and_a_locked_kiosk_until_unlocked(
    client: Client, dash_db: Database
) -> None:
    # kiosk-1's latest report says locked; kiosk-2 never sent one.
    fleet = client.get("/fleet/rows").text
    one, two = row_of(fleet, "kiosk-1"), row_of(fleet, "kiosk-2")
    assert f'2.1.0<br><span class="small muted" title="system image">{IMAGE}</span>' in one
    assert 'data-locked="yes"' in one and LOCKED in one and ">Locked<" in one
    assert '-<br><span class="small muted" title="system image">-</span>' in two
    assert 'data-locked="no"' in two and LOCKED not in two
    store = client.get(f"/stores/{STORE}").text
    assert LOCKED in row_of(store, "kiosk-1") and LOCKED not in row_of(store, "kiosk-2")

    page = client.get("/devices/kiosk-1").text
    assert LOCKED in heading(page)
    assert f"<dt>Image</dt><dd>{IMAGE}</dd>" in page
    assert '<dd id="kiosk-lock" data-locked="yes">' in page and "locked by a fleet command" in page
    # The refreshed part carries the heading's badge, which the page's script puts in place.
    live = client.get("/devices/kiosk-1/live").text
    badge = re.search(r'<template data-replaces="device-lock">(.*?)</template>', live, re.S)
    assert badge and LOCKED in badge.group(1)
    assert '<dd id="kiosk-lock" data-locked="yes">' in live

    other = client.get("/devices/kiosk-2").text
    assert LOCKED not in other
    assert "<dt>Image</dt><dd>-</dd>" in other
    assert '<dd id="kiosk-lock" data-locked="no"><span class="muted">-</span>' in other

    assert "(as last reported)" not in page
    # Offline, it is shown as it last said; once back, its next report says unlocked.
    records = DeviceRecords(dash_db)
    records.record_status("kiosk-1", DeviceStatus(device="kiosk-1", online=False, bd_seq=3))
    page = client.get("/devices/kiosk-1").text
    assert LOCKED in heading(page) and "(as last reported)" in page
    records.record_status("kiosk-1", DeviceStatus(device="kiosk-1", online=True, bd_seq=4))
    records.record_telemetry("kiosk-1", telemetry("kiosk-1", 0, image=IMAGE))
    one = row_of(client.get("/fleet/rows").text, "kiosk-1")
    assert 'data-locked="no"' in one and LOCKED not in one
    assert LOCKED not in client.get(f"/stores/{STORE}").text
    page = client.get("/devices/kiosk-1").text
    assert LOCKED not in page and '<span id="device-lock"></span>' in heading(page)
    assert '<dd id="kiosk-lock" data-locked="no">open for sales</dd>' in page
    live = client.get("/devices/kiosk-1/live").text
    assert '<template data-replaces="device-lock"></template>' in live and LOCKED not in live


def test_the_store_page_shows_the_days_sales_per_kind_and_device_and_its_oversells(
    client: Client,
) -> None:
    page = client.get(f"/stores/{STORE}?day={SALES_DAY}")
    assert page.status_code == 200
    text = " ".join(page.text.split())
    assert '<td>sale</td><td class="num">3</td><td class="num">€7.50</td>' in text
    assert 'kiosk-1</a></td><td>sale</td><td class="num">3</td>' in text
    # Counted at one, three sold after the count: two below zero.
    assert '<td>SKU-1</td><td>Coffee</td><td class="num">1</td><td class="num">3</td>' in text
    assert '<td class="num bad">-2</td>' in text
    other_day = client.get(f"/stores/{STORE}?day=2020-01-01").text
    assert "No sales that day." in other_day


def test_the_store_page_reads_only_the_sales_since_the_counts_in_force(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[datetime | None] = []

    def spied(db: Database, store: str, since: datetime | None = None, **kw: Any) -> Any:
        asked.append(since)
        return store_sales(db, store, since, **kw)

    monkeypatch.setattr(views, "store_sales", spied)
    text = " ".join(client.get(f"/stores/{STORE}?day={SALES_DAY}").text.split())
    assert asked == [utc_naive(START) - timedelta(hours=1)]  # the count's time
    assert '<td class="num bad">-2</td>' in text


def test_the_dashboard_stays_out_of_the_api_document(client: Client) -> None:
    paths = client.get("/api/v1/schema/openapi.json").json()["paths"]
    assert paths and not [p for p in paths if not p.startswith("/api/v1")]
    assert not [p for p in paths if p.split("/")[3] in ("fleet", "login", "logout")]
