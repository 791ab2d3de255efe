"""`appliance-hub fleet list|show`: what the hub knows of each appliance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import click
from peewee import JOIN, Database
from rich.console import Console
from rich.table import Table

from appliance.errors import DecodeError, StoreError
from appliance.mqtt.payloads import Telemetry, decode
from hub.cli_options import db_option
from hub.migrations import open_existing
from hub.models import Device, DeviceProgress


@dataclass(frozen=True, slots=True)
class FleetEntry:
    """One appliance as the hub last heard of it."""

    device: str
    online: bool
    last_seen: str | None
    bd_seq: int
    firmware: str
    outbox_depth: int | None
    catalog_version: int | None
    sales_upto_seq: int
    storage: str  # ok, low, full, read_only or io_error; "" when the device did not say
    telemetry: dict[str, Any] | None


def fleet_entries(db: Database, device: str | None = None) -> Iterator[FleetEntry]:
    """Every known device (or one), ordered by id, with its last telemetry."""
    query = (
        Device.select(Device, DeviceProgress.upto_seq)
        .join(DeviceProgress, on=(DeviceProgress.device == Device.id), join_type=JOIN.LEFT_OUTER)
        .order_by(Device.id)
        .dicts()
    )
    if device is not None:
        query = query.where(Device.id == device)
    for row in query.execute(db):
        report = _telemetry(row["telemetry"])
        yield FleetEntry(
            device=row["id"],
            online=bool(row["online"]),
            last_seen=_utc_text(row["last_seen"]),
            bd_seq=int(row["bd_seq"]),
            firmware=row["firmware"] or (report.firmware if report else ""),
            outbox_depth=report.outbox_depth if report else None,
            catalog_version=report.catalog_version if report else None,
            sales_upto_seq=int(row["upto_seq"] or 0),
            storage=report.storage.state if report and report.storage else "",
            telemetry=json.loads(row["telemetry"]) if report else None,
        )


@click.group("fleet")
def fleet() -> None:
    """The appliances this hub has heard of."""


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")


@fleet.command("list")
@db_option
@_json_option
def list_command(db_url: str, as_json: bool) -> None:
    """One line per appliance: online, last seen, session, firmware, outbox, catalog, storage."""
    db = _open(db_url)
    try:
        entries = list(fleet_entries(db))
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([_public(e) for e in entries], indent=2))
        return
    table = Table(
        "device", "online", "last seen (UTC)", "bd_seq", "firmware", "outbox", "catalog", "storage"
    )
    for e in entries:
        table.add_row(
            e.device,
            "yes" if e.online else "no",
            e.last_seen or "-",
            str(e.bd_seq) if e.bd_seq >= 0 else "-",
            e.firmware or "-",
            _maybe(e.outbox_depth),
            _maybe(e.catalog_version),
            e.storage or "-",
        )
    console = Console()
    console.print(table)
    console.print(f"{len(entries)} appliance(s), {sum(e.online for e in entries)} online")


@fleet.command("assign")
@click.argument("device")
@click.argument("store")
@db_option
def assign_command(device: str, store: str, db_url: str) -> None:
    """Put DEVICE in STORE: it gets that store's catalog (moving it from another store)."""
    from hub.catalog import assign_device

    db = _open(db_url)
    try:
        assign_device(db, device, store)
    finally:
        db.close()
    click.echo(f"{device} now belongs to store {store}")


@fleet.command("show")
@click.argument("device")
@db_option
@_json_option
def show_command(device: str, db_url: str, as_json: bool) -> None:
    """Everything the hub knows of one appliance, with its last telemetry."""
    db = _open(db_url)
    try:
        entry = next(fleet_entries(db, device), None)
    finally:
        db.close()
    if entry is None:
        raise click.ClickException(f"no appliance {device!r} has reached this hub")
    if as_json:
        click.echo(json.dumps(asdict(entry), indent=2))
        return
    table = Table(show_header=False, box=None)
    fields = {
        "device": entry.device,
        "online": "yes" if entry.online else "no",
        "last seen (UTC)": entry.last_seen or "-",
        "bd_seq": str(entry.bd_seq) if entry.bd_seq >= 0 else "-",
        "firmware": entry.firmware or "-",
        "outbox depth": _maybe(entry.outbox_depth),
        "catalog version": _maybe(entry.catalog_version),
        "sales committed up to seq": str(entry.sales_upto_seq),
    }
    telemetry = entry.telemetry or {}
    for key in ("at", "uptime_s", "disk_free_bytes", "cpu_temp_c", "malformed_messages"):
        if key in telemetry:
            fields[key.replace("_", " ")] = _maybe(telemetry[key])
    storage = telemetry.get("storage") or {}
    if storage:
        fields["storage"] = storage.get("problem") or (
            f"{storage['state']}, {storage['free_bytes'] // (1024 * 1024)} MiB free"
        )
    for health in telemetry.get("devices") or []:
        reason = f" ({health['reason']})" if health.get("reason") else ""
        fields[f"{health['kind']} {health['device']}"] = f"{health['state']}{reason}"
    for key, value in fields.items():
        table.add_row(key, value)
    Console().print(table)


def _open(db_url: str) -> Database:
    try:
        return open_existing(db_url)
    except StoreError as err:
        raise click.ClickException(str(err)) from err


def _telemetry(text: str | None) -> Telemetry | None:
    if not text:
        return None
    try:
        return decode(text.encode("utf-8"), Telemetry)
    except DecodeError:
        return None


def _utc_text(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC, microsecond=0).isoformat()


def _public(entry: FleetEntry) -> dict[str, object]:
    """The list view's JSON: everything but the raw telemetry."""
    data = asdict(entry)
    del data["telemetry"]
    return data


def _maybe(value: object) -> str:
    return "-" if value is None else str(value)
