"""What the dashboard's pages show, read from the hub database: fleet, device and store.

The fleet page is polled every few seconds, so it reads the whole fleet in a handful of
queries (no query per device); the device page reads one device in full with the same
functions `appliance-hub fleet show` uses.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from peewee import JOIN, Database, fn

from appliance.errors import DecodeError
from appliance.mqtt.payloads import DesiredConfig, ReportedConfig, Telemetry, decode
from hub.catalog import HubCatalog
from hub.cli_fleet import FleetEntry, fleet_entries
from hub.command_hold import held_jobs, unsent_jobs
from hub.device_answers import JobView, config_state, configs, jobs
from hub.models import Device, DeviceLog, DeviceProgress, JournalState, Sale
from hub.rejections import rejection_counts
from hub.releases.views import (
    TargetView,
    UpdateView,
    device_update,
    device_updates,
    rollout_history,
)
from hub.stock_levels import StockLevel, oversells, stock_levels, store_sales
from hub.stores import DeviceStore, devices_of
from hub.telemetry_history import Point, history

JOBS_SHOWN = 50
LOGS_SHOWN = 5
# A device that reports is online: its offline card debits reach the hub within moments,
# and it reports again once they are in. Held longer than this, something keeps them back
# (a fault on the device or at the hub, or a debit the hub declined as a conflict).
CARDS_LATE_S = 900.0


@dataclass(frozen=True, slots=True)
class LastSale:
    """A device's newest committed document."""

    at: datetime
    kind: str
    total: int
    currency: str


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One device on the fleet page."""

    device: str
    store: str | None
    online: bool
    last_seen: datetime | None
    firmware: str
    image_version: str  # "" when the device runs from no image or never said
    locked: bool  # its last telemetry says a fleet command locked the kiosk
    outbox_depth: int | None
    catalog_version: int | None
    catalog_store: str | None
    problems: tuple[str, ...]  # health: attached devices and storage not ok
    reported: bool  # whether any telemetry arrived (else health is unknown)
    journal: str
    journal_ok: bool
    rejected_sales: int
    last_sale: LastSale | None
    update: UpdateView | None = None  # its latest update report: release and update state


def stores(db: Database) -> list[str]:
    """Every store a device is in, sorted."""
    query = DeviceStore.select(DeviceStore.store).distinct().order_by(DeviceStore.store)
    return [str(store) for (store,) in query.tuples().execute(db)]


def fleet(db: Database, store: str | None = None) -> list[FleetRow]:
    """Every device (or those of one store), by id."""
    last = Sale.alias()
    query = (
        Device.select(
            Device.id,
            Device.online,
            Device.last_seen,
            Device.firmware,
            Device.telemetry,
            DeviceStore.store,
            last.created_at,
            last.kind,
            last.total,
            last.currency,
        )
        .join(DeviceStore, JOIN.LEFT_OUTER, on=(DeviceStore.device == Device.id))
        .switch(Device)
        .join(DeviceProgress, JOIN.LEFT_OUTER, on=(DeviceProgress.device == Device.id))
        # The last sale up to which all are committed: found through the (device, seq) index.
        .join(
            last,
            JOIN.LEFT_OUTER,
            on=((last.device == Device.id) & (last.seq == DeviceProgress.upto_seq)),
        )
        .order_by(Device.id)
        .tuples()
    )
    if store is not None:
        query = query.where(DeviceStore.store == store)
    journals = {
        str(device): (int(upto), broken_at)
        for device, upto, broken_at in JournalState.select(
            JournalState.device, JournalState.upto, JournalState.broken_at
        )
        .tuples()
        .execute(db)
    }
    rejected = rejection_counts(db)
    updates = device_updates(db)
    rows = []
    for (
        device,
        online,
        seen,
        firmware,
        text,
        in_store,
        sold_at,
        kind,
        total,
        currency,
    ) in query.execute(db):
        report = _telemetry(text)
        journal, journal_ok = _journal(journals.get(device), report)
        rows.append(
            FleetRow(
                device=device,
                store=in_store,
                online=bool(online),
                last_seen=seen,
                firmware=firmware or (report.firmware if report else ""),
                image_version=report.image_version if report else "",
                locked=bool(report and report.locked),
                outbox_depth=report.outbox_depth if report else None,
                catalog_version=report.catalog_version if report else None,
                catalog_store=(report.catalog_store or None) if report else None,
                problems=problems(report),
                reported=report is not None,
                journal=journal,
                journal_ok=journal_ok,
                rejected_sales=rejected.get(device, 0),
                last_sale=LastSale(sold_at, kind, total, currency) if sold_at else None,
                update=updates.get(device),
            )
        )
    return rows


def problems(report: Telemetry | None) -> tuple[str, ...]:
    """What is not well with a device, from its telemetry, one phrase each."""
    if report is None:
        return ()
    found = [
        f"{h.kind} {h.device}: {h.state}" + (f" ({h.reason})" if h.reason else "")
        for h in report.devices
        if h.state != "ok"
    ]
    if report.storage is not None and report.storage.state != "ok":
        found.append(f"storage: {report.storage.problem or report.storage.state}")
    if report.quarantined_sales:
        found.append(f"{report.quarantined_sales} sale(s) quarantined")
    held = report.stored_value
    if held is not None and (held.debits or held.voids) and (held.oldest_age_s or 0) > CARDS_LATE_S:
        found.append(
            f"{held.debits + held.voids} card debit(s) or give-back(s) not settled with the hub"
            f" for {round((held.oldest_age_s or 0) / 60)} min"
        )
    return tuple(found)


def _journal(state: tuple[int, int | None] | None, report: Telemetry | None) -> tuple[str, bool]:
    """The journal in a few words, and whether it is well."""
    if state is not None and state[1] is not None:
        return f"BROKEN at entry {state[1]}", False
    own = report.journal if report else None
    if own is not None and own.broken_at is not None:
        return f"device found a break at {own.broken_at}", False
    if state is None:
        return ("no entries yet", True) if own is None or not own.head else ("not at hub yet", True)
    behind = f", {own.head - state[0]} to send" if own is not None and own.head > state[0] else ""
    return f"ok up to {state[0]}{behind}", True


def _telemetry(text: str | None) -> Telemetry | None:
    if not text:
        return None
    try:
        return decode(text.encode("utf-8"), Telemetry)
    except DecodeError:
        return None


# --- one device ------------------------------------------------------------------------


def known(db: Database, device: str) -> bool:
    """Whether the hub has heard of the device."""
    return bool(Device.select().where(Device.id == device).exists(db))


@dataclass(frozen=True, slots=True)
class CollectedLogs:
    """One collect_logs result."""

    id: int
    command_id: str
    source: str
    received_at: datetime
    lines: list[str]


@dataclass(frozen=True, slots=True)
class DevicePage:
    """Everything the device page shows."""

    entry: FleetEntry
    problems: tuple[str, ...]
    jobs: list[JobView]
    held: set[str]  # ids of jobs still held at the hub for the device
    unsent: set[str]  # of those, the ones not sent in the device's current session
    desired: DesiredConfig | None
    reported: ReportedConfig | None
    config_state: str
    logs: list[CollectedLogs]
    points: list[Point]
    since: datetime
    image_version: str  # "" when the device runs from no image or never said
    locked: bool  # its last telemetry says a fleet command locked the kiosk
    telemetry: dict[str, Any] = field(default_factory=dict)
    update: UpdateView | None = None  # its latest update report
    rollouts: list[TargetView] = field(default_factory=list)  # that sent it a release


def device_page(db: Database, device: str, *, since: datetime) -> DevicePage | None:
    """The device page's data, or None when the hub never heard of the device."""
    entry = next(fleet_entries(db, device), None)
    if entry is None:
        return None
    desired, reported = configs(db, device)
    telemetry = Device.select(Device.telemetry).where(Device.id == device).scalar(db)
    rows = (
        DeviceLog.select()
        .where(DeviceLog.device == device)
        .order_by(DeviceLog.id.desc())
        .limit(LOGS_SHOWN)
        .execute(db)
    )
    logs = [
        CollectedLogs(row.id, row.command_id, row.source, row.received_at, json.loads(row.lines))
        for row in rows
    ]
    report = _telemetry(telemetry)
    return DevicePage(
        entry=entry,
        problems=problems(report),
        jobs=jobs(db, device, limit=JOBS_SHOWN),
        held=held_jobs(db, device),
        unsent=unsent_jobs(db, device),
        desired=desired,
        reported=reported,
        config_state=config_state(desired, reported),
        logs=logs,
        points=history(db, device, since),
        since=since,
        image_version=report.image_version if report else "",
        locked=bool(report and report.locked),
        telemetry=entry.telemetry or {},
        update=device_update(db, device),
        rollouts=rollout_history(db, device),
    )


# --- one store -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    """How many documents, and their total per currency."""

    count: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, count: int, currency: str, total: int) -> Totals:
        """These plus `count` documents worth `total` in `currency`."""
        totals = dict(self.totals)
        totals[currency] = totals.get(currency, 0) + total
        return Totals(self.count + count, totals)


@dataclass(frozen=True, slots=True)
class StorePage:
    """A store's sales of one day (UTC) and its oversold products."""

    store: str
    day: datetime  # midnight UTC, naive
    devices: list[str]
    by_kind: dict[str, Totals]
    by_device: dict[str, dict[str, Totals]]  # device -> kind -> totals
    oversold: list[StockLevel]
    catalog_version: int


def _counted_since(catalog: HubCatalog) -> datetime | None:
    """The oldest stock count in force (None: one has no time, or there are none)."""
    counted = catalog.counts()
    times = [count.counted_at for count in counted.values() if count.counted_at is not None]
    return min(times) if times and len(times) == len(counted) else None


def store_page(db: Database, store: str, *, day: datetime) -> StorePage:
    """A store's sales on `day` (its UTC midnight) per kind and per device, and oversells."""
    start, end = day, day + timedelta(days=1)
    query = (
        Sale.select(Sale.device, Sale.kind, Sale.currency, fn.COUNT(Sale.id), fn.SUM(Sale.total))
        .where((Sale.store == store) & (Sale.created_at >= start) & (Sale.created_at < end))
        .group_by(Sale.device, Sale.kind, Sale.currency)
        .tuples()
    )
    by_kind: dict[str, Totals] = defaultdict(Totals)
    by_device: dict[str, dict[str, Totals]] = defaultdict(lambda: defaultdict(Totals))
    for device, kind, currency, count, total in query.execute(db):
        by_kind[kind] = by_kind[kind].add(int(count), currency, int(total or 0))
        by_device[device][kind] = by_device[device][kind].add(int(count), currency, int(total or 0))
    catalog = HubCatalog(db, store)
    # Each count subtracts only the sales made after it: older ones are not even read.
    levels = stock_levels(catalog, store_sales(db, store, _counted_since(catalog)))
    return StorePage(
        store=store,
        day=day,
        devices=devices_of(db, store),
        by_kind=dict(by_kind),
        by_device={device: dict(kinds) for device, kinds in sorted(by_device.items())},
        oversold=oversells(levels),
        catalog_version=catalog.version(),
    )
