"""The dashboard's update columns: each device's release and update state, and its rollouts.

The seeded fleet of test_pages.py; update reports are written through the serve worker's
own handler (hub/releases/reports.py). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.mqtt.payloads import UpdateReport, UpdateState, encode
from hub.fleet_keys import load_fleet_key
from hub.releases.reports import UpdateReports
from hub.releases.rollout import Signer, start_rollout
from tests.hub.dashboard.conftest import Client
from tests.hub.dashboard.seeding import STORE
from tests.hub.dashboard.test_pages import client, fleet_key, row_of, seeded  # noqa: F401
from tests.hub.releases.making import store_release

NEW = "2026.12.2"


def test_the_fleet_and_device_pages_show_each_devices_release_and_update_state(
    client: Client,  # noqa: F811
    dash_db: Database,
    fleet_key: Path,  # noqa: F811
) -> None:
    store_release(dash_db, Ed25519PrivateKey.generate(), NEW)
    signer = Signer(load_fleet_key(fleet_key), "https://hub:8443")
    jobs = {c.device: c.id for c in start_rollout(dash_db, NEW, STORE, 100, signer).added}
    reports = UpdateReports(dash_db)

    def say(device: str, state: UpdateState, done: int = 0, reason: str = "") -> None:
        report = UpdateReport(
            device=device, job=jobs[device], version=NEW, state=state, running="2026.12.1",
            done=done, total=1000, reason=reason,
        )  # fmt: skip
        reports.on_report(device, encode(report))

    fleet = client.get("/fleet/rows").text
    assert 'class="update"><span class="muted">-</span>' in row_of(fleet, "kiosk-1")
    say("kiosk-1", "downloading", done=400)
    say("kiosk-2", "rolled_back", reason="the new slot never became healthy: no READY")
    fleet = client.get("/fleet/rows").text
    assert '<span class="wait" title="">2026.12.1 → 2026.12.2 downloading 40 %</span>' in row_of(
        fleet, "kiosk-1"
    )
    two = row_of(fleet, "kiosk-2")
    assert "2026.12.1 (2026.12.2 rolled back)" in two and 'class="bad"' in two
    assert "no READY" in two  # the reason, as the cell's title

    page = client.get("/devices/kiosk-2").text
    assert re.search(r'<dd id="update"><span class="bad">2026.12.1 \(2026.12.2 rolled back\)', page)
    updates = re.search(r'<section class="card" id="updates">.*?</section>', page, re.S)
    assert updates, "no updates section"
    row = " ".join(updates.group(0).split())
    assert f'data-job="{jobs["kiosk-2"]}" data-state="rolled_back"' in row
    assert f"#1 to {STORE}" in row and "rolled back" in row and "no READY" in row

    say("kiosk-1", "committed", done=1000)
    one = row_of(client.get("/fleet/rows").text, "kiosk-1")
    assert f'<span class="good" title="">{NEW}</span>' in one
    other = client.get("/devices/kiosk-1/live").text
    assert 'data-state="committed"' in other
