"""Each device's telemetry over time, for the dashboard's charts: a few numbers per report.

`Device.telemetry` holds only the last report. Every report also adds a point here, in the
transaction that stores it (hub/ingest.py DeviceRecords.record_telemetry). A device keeps
about KEEP_POINTS points (the dashboard's longest window, a week, at the default interval
of a minute) and none older than KEEP_DAYS. The count is trimmed about every TRIM_EVERY
reports of a device, not on each one; points past the age are deleted for every device by
the serve worker's periodic `sweep`, also for devices that report no more.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import (
    AutoField,
    BigIntegerField,
    CharField,
    Database,
    DateTimeField,
    FloatField,
    IntegerField,
    SchemaManager,
)

from appliance.mqtt.payloads import Telemetry
from hub.models import HubModel

log = logging.getLogger(__name__)

KEEP_DAYS = 7
KEEP_POINTS = 10_100  # a week of one report a minute (10,080), and a little
TRIM_EVERY = 100  # reports of a device, on average, between trims of its points by count
SWEEP_EVERY = 300.0  # seconds between deletions of every device's points past KEEP_DAYS
HEALTHY = "ok"  # a DeviceHealthReport state (appliance/core/devices.py HealthState)


class TelemetryPoint(HubModel):
    """The numbers of one telemetry report worth a chart."""

    id = AutoField()
    device = CharField(max_length=128)
    at = DateTimeField()  # received, naive UTC (the device's own clock may be off)
    outbox_depth = BigIntegerField()
    catalog_version = BigIntegerField()
    disk_free_bytes = BigIntegerField()
    cpu_temp_c = FloatField(null=True)
    devices_not_ok = IntegerField(default=0)  # attached devices degraded or offline

    class Meta:
        indexes = ((("device", "at"), False), (("device", "id"), False), (("at",), False))


def create_history_table(db: Database) -> None:
    """Create `telemetry_point` (part of migration 9)."""
    SchemaManager(TelemetryPoint, database=db).create_all(safe=True)


def record(db: Database, device: str, report: Telemetry, at: datetime) -> None:
    """Add a report's point; now and then drop the device's points beyond the bounds."""
    with db.atomic():
        point = TelemetryPoint.insert(
            device=device,
            at=at,
            outbox_depth=report.outbox_depth,
            catalog_version=report.catalog_version,
            disk_free_bytes=report.disk_free_bytes,
            cpu_temp_c=report.cpu_temp_c,
            devices_not_ok=sum(1 for h in report.devices if h.state != HEALTHY),
        ).execute(db)
        # Ids are shared by all devices: a hash, not the id alone, spreads each one's trims
        # (devices reporting in turn could otherwise never land on a multiple).
        if zlib.crc32(f"{device}/{point}".encode()) % TRIM_EVERY == 0:
            trim(db, device, at)


def trim(db: Database, device: str, now: datetime) -> None:
    """Drop a device's points beyond KEEP_POINTS and older than KEEP_DAYS."""
    mine = TelemetryPoint.device == device
    # The oldest point still kept by count; both deletions walk the (device, ...) indexes.
    boundary = (
        TelemetryPoint.select(TelemetryPoint.id)
        .where(mine)
        .order_by(TelemetryPoint.id.desc())
        .offset(KEEP_POINTS - 1)
        .limit(1)
        .scalar(db)
    )
    too_old = TelemetryPoint.at < now - timedelta(days=KEEP_DAYS)
    if boundary is not None:
        too_old = too_old | (TelemetryPoint.id < boundary)
    TelemetryPoint.delete().where(mine & too_old).execute(db)


def sweep(db: Database, now: datetime) -> None:
    """Delete every device's points older than KEEP_DAYS (naive UTC `now`)."""
    too_old = TelemetryPoint.at < now - timedelta(days=KEEP_DAYS)
    gone = TelemetryPoint.delete().where(too_old).execute(db)
    if gone:
        log.info("%d telemetry point(s) past %d days deleted", gone, KEEP_DAYS)


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a device's history."""

    at: datetime  # naive UTC
    outbox_depth: int
    catalog_version: int
    disk_free_bytes: int
    cpu_temp_c: float | None
    devices_not_ok: int


def history(db: Database, device: str, since: datetime) -> list[Point]:
    """A device's points received at or after `since` (naive UTC), oldest first."""
    query = (
        TelemetryPoint.select(
            TelemetryPoint.at,
            TelemetryPoint.outbox_depth,
            TelemetryPoint.catalog_version,
            TelemetryPoint.disk_free_bytes,
            TelemetryPoint.cpu_temp_c,
            TelemetryPoint.devices_not_ok,
        )
        .where((TelemetryPoint.device == device) & (TelemetryPoint.at >= since))
        .order_by(TelemetryPoint.id)
        .tuples()
    )
    return [Point(*row) for row in query.execute(db)]
