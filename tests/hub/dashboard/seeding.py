"""A small fleet in a hub database, written through the hub's own ingest and records.

kiosk-1 (online, store berlin, running image IMAGE) has telemetry over the last hour, three
sales of a product counted at one (so it is oversold by two), a finished lock job (its last
report says locked), collected logs and a desired configuration in force; kiosk-2 (store
berlin) was born and then went offline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from peewee import Database

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.mqtt.payloads import (
    DesiredConfig,
    DeviceHealthReport,
    DeviceStatus,
    ReportedConfig,
    Telemetry,
    encode,
)
from hub.catalog import HubCatalog
from hub.device_answers import DeviceAnswers
from hub.fleet_keys import load_fleet_key, new_command
from hub.ingest import DeviceRecords, SalesIngest, utc_naive
from hub.stores import assign_device
from tests.hub.test_ingest import START, batch

STORE = "berlin"
SALES_DAY = START.strftime("%Y-%m-%d")  # the day tests/hub/test_ingest.py's sales are made
OUTBOX = [0, 4, 9, 2, 0, 1]  # kiosk-1's outbox depth, one report every ten minutes
EVIL_LINE = "<script>alert('log')</script>"
IMAGE = "2026.05.2-1-g0a1b2c3"  # kiosk-1's system image


class Clock:
    """A settable clock for the hub's records."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.current.timestamp()


def telemetry(
    device: str, outbox: int, *, printer: str = "ok", image: str = "", locked: bool = False
) -> Telemetry:
    """A health report as an appliance sends it."""
    return Telemetry(
        device=device,
        at=datetime.now(UTC).isoformat(),
        firmware="2.1.0",
        uptime_s=3600,
        outbox_depth=outbox,
        catalog_version=4,
        disk_free_bytes=512 * 1024 * 1024,
        cpu_temp_c=48.5,
        devices=[
            DeviceHealthReport(
                device="p1",
                kind="printer",
                state=printer,
                reason="paper low" if printer != "ok" else "",
            )
        ],
        catalog_store=STORE,
        image_version=image,
        locked=locked,
    )


def seed(db: Database, fleet_key: Path) -> str:
    """Write the fleet; returns the id of kiosk-1's lock job."""
    now = datetime.now(UTC)
    clock = Clock(now - timedelta(minutes=60))
    records = DeviceRecords(db, clock=clock)
    for device in ("kiosk-1", "kiosk-2"):
        assign_device(db, device, STORE)
    records.record_status("kiosk-2", DeviceStatus(device="kiosk-2", online=True, bd_seq=1))
    records.record_status("kiosk-2", DeviceStatus(device="kiosk-2", online=False, bd_seq=1))
    status = DeviceStatus(device="kiosk-1", online=True, bd_seq=3, firmware="2.1.0")
    records.record_status("kiosk-1", status)
    for step, depth in enumerate(OUTBOX):
        clock.current = now - timedelta(minutes=55 - 10 * step)
        last = step == len(OUTBOX) - 1  # the latest report: the lock job below has run
        report = telemetry(
            "kiosk-1", depth, printer="degraded" if last else "ok", image=IMAGE, locked=last
        )
        records.record_telemetry("kiosk-1", report)

    product = Product(sku="SKU-1", name="Coffee", price=Money(250, "EUR"), tax_class="std")
    counted = utc_naive(START) - timedelta(hours=1)
    HubCatalog(db, STORE).import_products([(product, 1)], now=counted)
    SalesIngest(db).ingest("kiosk-1", batch("kiosk-1", [1, 2, 3]))

    answers = DeviceAnswers(db)
    lock = new_command(load_fleet_key(fleet_key), "kiosk-1", "lock", expires_in=timedelta(hours=1))
    answers.command_sent("kiosk-1", encode(lock))
    for state, reason in (("QUEUED", ""), ("IN_PROGRESS", ""), ("SUCCEEDED", "locked")):
        answers.command_update("kiosk-1", _update(lock.id, state, reason))
    lines = {"v": 1, "device": "kiosk-1", "command_id": "c-1", "source": "ring",
             "lines": ["service started", EVIL_LINE]}  # fmt: skip
    answers.logs("kiosk-1", json.dumps(lines).encode())
    answers.config_desired(
        "kiosk-1", encode(DesiredConfig(version=2, config={"screen": {"idle_seconds": 90}}))
    )
    answers.config_reported("kiosk-1", encode(ReportedConfig(version=2)))
    return lock.id


def _update(job_id: str, state: str, reason: str) -> bytes:
    return json.dumps({"v": 1, "id": job_id, "state": state, "reason": reason}).encode()
