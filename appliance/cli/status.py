"""`appliance status`: what the store holds, for people and for scripts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peewee import DatabaseError, SqliteDatabase

from appliance import __version__
from appliance.core.events import EventBus
from appliance.core.money import Money
from appliance.core.offline_limits import offline_block
from appliance.drivers.manager import read_snapshot, snapshot_path_for
from appliance.errors import StorageFaultError
from appliance.service import image_version as image_release
from appliance.service.clock_check import kernel_clock_synchronised
from appliance.service.offline_card_limits import limits_from
from appliance.service.storage_watch import StorageWatch
from appliance.settings import Settings, resolve_config_path
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger
from appliance.store.migrations import SCHEMA_VERSION, check_not_newer
from appliance.store.outbox import SalesOutbox
from appliance.store.payment_attempts import PaymentAttempts
from appliance.store.storage_faults import store_error

IMAGE_VERSION_FILE = image_release.IMAGE_VERSION_FILE


def image_version(path: Path | None = None) -> str | None:
    """The version of the image this appliance runs from, or None when not from one."""
    return image_release.read_image_version(path or IMAGE_VERSION_FILE)


def collect_status(settings: Settings, config_option: str | None) -> dict[str, Any]:
    """A JSON-ready snapshot; never changes the database."""
    path = Path(settings.database.path)
    config = resolve_config_path(config_option)
    report: dict[str, Any] = {
        "version": __version__,
        "image": image_version(),
        # What the kernel says now; each sale keeps what it said when it was stamped.
        "clock_synchronised": kernel_clock_synchronised(),
        "device_id": settings.device.id,
        "config": str(config) if config.exists() else None,
        "database": {"path": str(path), "exists": path.exists()},
        "storage": collect_storage(settings),
        "devices": collect_devices(settings),
    }
    if not path.exists():
        return report
    try:
        _collect_store(report, settings, path)
    except (StorageFaultError, DatabaseError) as err:  # a failing card: say what was read, and why
        report["database"]["error"] = str(store_error(err, "the database could not be read"))
    return report


def collect_storage(settings: Settings) -> dict[str, Any]:
    """The data partition now: its state against the reserve, free space, what uses it.

    A look, not a probe: nothing is written, so it is safe on a failing card.
    """
    folder = Path(settings.database.path).parent
    if not folder.is_dir():
        return {"state": "unknown", "problem": f"{folder} does not exist"}
    watch = StorageWatch(folder, settings.database.reserve_bytes, EventBus())
    status = watch.check()
    return {
        "state": status.state,
        "free_bytes": status.free_bytes,
        "total_bytes": status.total_bytes,
        "reserve_bytes": status.reserve_bytes,
        "problem": "" if status.accepting_sales else status.describe(),
    }


def _collect_store(report: dict[str, Any], settings: Settings, path: Path) -> None:
    """What the database holds, added to `report`."""
    db = open_database(path)
    try:
        version = check_not_newer(db)
        report["database"] |= {
            "schema_version": version,
            "schema_current": version == SCHEMA_VERSION,
            "size_bytes": path.stat().st_size,
        }
        if version == 0:
            return
        ledger = SalesLedger(db, settings.device.receipt_prefix)
        catalog = SqliteCatalog(db)
        outbox = SalesOutbox(db)
        last = ledger.last()
        report["catalog"] = {"products": catalog.count(), "barcodes": catalog.barcode_count()}
        report["documents"] = {
            "count": ledger.count(),
            "clock_unverified": ledger.clock_unverified_count(),
            "last": None
            if last is None
            else {
                "receipt_number": last.receipt_number,
                "kind": last.kind,
                "created_at": last.created_at.isoformat(),
                "total": Money(last.total, last.currency).format(settings.store.locale),
            },
        }
        report["outbox"] = {
            "depth": outbox.depth(),
            "oldest": outbox.oldest_created_at(),
        }
        if "payment_journal" in db.get_tables():
            report["payments"] = {
                "in_doubt": _payments_in_doubt(db, settings),
                "offline": _offline_payments(db, settings),
            }
    finally:
        db.close()


def _payments_in_doubt(db: SqliteDatabase, settings: Settings) -> list[dict[str, Any]]:
    """Card attempts not final: pending (only the terminal can tell) or approved without a sale.

    While the appliance runs, one may be with the terminal; at start, recovery asks the
    terminal about each. One still here after that needs a person.
    """
    return [
        {
            "reference": attempt.reference,
            "amount": Money(attempt.amount, attempt.currency).format(settings.store.locale),
            "state": attempt.state,
            "kind": attempt.kind,
            "message": attempt.message,
            "started_at": attempt.started_at.isoformat(timespec="seconds"),
        }
        for attempt in PaymentAttempts(db).open_attempts()
    ]


def _offline_payments(db: SqliteDatabase, settings: Settings) -> dict[str, Any]:
    """Card payments approved offline the terminal has not submitted yet, and their limits."""
    usage = PaymentAttempts(db).offline_usage()
    limits = limits_from(settings.payments)
    now = datetime.now(UTC)
    currency, locale = settings.store.currency, settings.store.locale
    oldest = usage.oldest
    return {
        "count": usage.count,
        "amount": Money(usage.amount, currency).format(locale),
        "amount_minor": usage.amount,
        "oldest": oldest.isoformat(timespec="seconds") if oldest else None,
        "oldest_age_seconds": round((now - oldest).total_seconds()) if oldest else None,
        "limits": {
            "max_per_payment": Money(limits.max_per_payment, currency).format(locale),
            "max_total": Money(limits.max_total, currency).format(locale),
            "max_age_hours": settings.payments.offline_max_age_hours,
        },
        "blocked": offline_block(usage, limits, now),
    }


def collect_devices(settings: Settings) -> dict[str, Any]:
    """The configured devices and the health the running appliance last wrote, with its age."""
    snapshot = read_snapshot(snapshot_path_for(settings.database.path))
    section: dict[str, Any] = {
        "configured": sorted(settings.devices),
        "snapshot": None,
        "health": [],
    }
    if snapshot is not None:
        written = datetime.fromtimestamp(snapshot["written_at"], UTC)
        section["snapshot"] = {
            "written_at": written.isoformat(timespec="seconds"),
            "age_seconds": snapshot["age_seconds"],
            "pid": snapshot["pid"],
        }
        section["health"] = snapshot["devices"]
    return section


def render_status(report: dict[str, Any]) -> None:
    """Print the snapshot as a table, and device health as a second one."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rest = {key: value for key, value in report.items() if key not in ("devices", "payments")}
    for key, value in _flatten(rest):
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)
    if problem := report.get("storage", {}).get("problem"):
        console.print(f"[bold red]{problem}[/]")
    offline = report.get("payments", {}).get("offline")
    if offline is not None:
        limits = offline["limits"]
        waiting = (
            f"{offline['count']}, {offline['amount']}, the oldest from {offline['oldest']}"
            if offline["count"]
            else "none"
        )
        style = "bold red" if offline["blocked"] else "bold yellow" if offline["count"] else "bold"
        console.print(
            f"[{style}]offline card payments[/]: {waiting} (limit {limits['max_total']}"
            f" / {limits['max_age_hours']:g} h, {limits['max_per_payment']} each)"
        )
        if offline["blocked"]:
            console.print(f"[bold red]{offline['blocked']}[/]")
    for attempt in report.get("payments", {}).get("in_doubt", []):
        console.print(
            f"[bold yellow]card payment in doubt[/]: {attempt['reference']}"
            f" {attempt['amount']} ({attempt['state']}, since {attempt['started_at']});"
            " settle it with `appliance sim settle paid|not-paid`"
        )
    devices = report.get("devices")
    if devices is None:
        return
    snapshot = devices["snapshot"]
    if snapshot is None:
        configured = ", ".join(devices["configured"]) or "none configured"
        console.print(f"devices: no health reported yet ({configured})")
        return
    health = Table(
        title=f"devices, as of {snapshot['written_at']} ({snapshot['age_seconds']:g} s ago)",
        title_justify="left",
    )
    for column in ("device", "kind", "state", "reason", "address"):
        health.add_column(column)
    styles = {"ok": "green", "degraded": "yellow", "offline": "red"}
    for row in devices["health"]:
        state = row.get("state", "?")
        health.add_row(
            row.get("device", "?"),
            row.get("kind", "?"),
            f"[{styles.get(state, 'bold')}]{state}[/]",
            row.get("reason", ""),
            row.get("address", ""),
        )
    console.print(health)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows
