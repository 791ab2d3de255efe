"""`appliance-hub fleet list|show|jobs|help`: what the hub knows of each appliance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import click
import msgspec
from peewee import JOIN, Database
from rich.console import Console
from rich.table import Table

from appliance.errors import DecodeError
from appliance.mqtt.payloads import ReportedConfig, Telemetry, decode
from hub.cli_drawer import drawer_log, openings_of
from hub.cli_options import db_option, open_db
from hub.device_answers import JobView, LogsView, config_state, configs, jobs, latest_logs
from hub.help_calls import open_calls
from hub.ingest import utc_text
from hub.journal_ingest import chain_state
from hub.models import Device, DeviceProgress
from hub.rejections import rejection_counts
from hub.stores import store_of
from hub.worker_stats import malformed_from

DRAWER_SHOWN = 10  # fleet show lists this many of the latest openings without a sale
JOBS_SHOWN = 5  # fleet show lists this many of the latest command jobs


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
    journal_entries: int
    journal_head: int
    journal_upto: int  # every entry up to here is stored (and was proven, before a break)
    journal_broken_at: int | None  # the first entry the hub could not prove; None: intact
    journal_break: str  # why it could not
    drawer_without_sale: int  # drawer openings the journal brought with no sale
    rejected_sales: int  # sales the hub kept apart (unreadable or in conflict)
    quarantined_sales: int | None  # the device's own count of them, from its telemetry
    store: str | None  # the store the hub put the device in
    catalog_store: str | None  # the store whose catalog the device says it holds
    telemetry: dict[str, Any] | None

    @property
    def chain(self) -> str:
        """The hub's verdict on the device's journal, in one phrase."""
        if not self.journal_entries:
            return "-"
        if self.journal_broken_at is None:
            return "ok"
        return f"BROKEN at {self.journal_broken_at}"


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
    rejected = rejection_counts(db)
    for row in query.execute(db):
        report = _telemetry(row["telemetry"])
        journal = chain_state(db, row["id"])
        yield FleetEntry(
            device=row["id"],
            online=bool(row["online"]),
            last_seen=utc_text(row["last_seen"]) if row["last_seen"] else None,
            bd_seq=int(row["bd_seq"]),
            firmware=row["firmware"] or (report.firmware if report else ""),
            outbox_depth=report.outbox_depth if report else None,
            catalog_version=report.catalog_version if report else None,
            sales_upto_seq=int(row["upto_seq"] or 0),
            storage=report.storage.state if report and report.storage else "",
            journal_entries=journal.entries if journal else 0,
            journal_head=journal.head if journal else 0,
            journal_upto=journal.upto if journal else 0,
            journal_broken_at=journal.broken_at if journal else None,
            journal_break=journal.reason if journal else "",
            drawer_without_sale=openings_of(row["id"], without_sale=True).count(db),
            rejected_sales=rejected.get(row["id"], 0),
            quarantined_sales=report.quarantined_sales if report else None,
            store=store_of(db, row["id"]),
            catalog_store=report.catalog_store if report else None,
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
    db = open_db(db_url)
    try:
        entries = list(fleet_entries(db))
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([_public(e) for e in entries], indent=2))
        return
    table = Table(
        "device",
        "online",
        "last seen (UTC)",
        "bd_seq",
        "firmware",
        "outbox",
        "catalog",
        "storage",
        "journal",
        "rejected",
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
            e.chain,
            str(e.rejected_sales) if e.rejected_sales else "-",
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
    from hub.stores import assign_device

    db = open_db(db_url)
    try:
        assign_device(db, device, store)
    finally:
        db.close()
    click.echo(f"{device} now belongs to store {store}")


@fleet.command("staff-device")
@click.argument("device")
@click.option("--revoke", is_flag=True, help="Make it an ordinary device again.")
@db_option
def staff_device_command(device: str, revoke: bool, db_url: str) -> None:
    """Make DEVICE a staff till or tablet: it sees its store's calls for help and may approve.

    The device must also run the staff screen ([screen] mode = "staff"); a device that only
    says so in its birth is not trusted with approvals.
    """
    from hub.help_board import grant_staff_device

    db = open_db(db_url)
    try:
        grant_staff_device(db, device, granted=not revoke)
    finally:
        db.close()
    click.echo(f"{device} is {'no longer ' if revoke else ''}a staff device")


@fleet.command("show")
@click.argument("device")
@click.option("--logs", "with_logs", is_flag=True, help="Also print the latest collected logs.")
@db_option
@_json_option
def show_command(device: str, with_logs: bool, db_url: str, as_json: bool) -> None:
    """Everything the hub knows of one appliance: telemetry, jobs, configuration, logs."""
    now = datetime.now(UTC)
    db = open_db(db_url)
    try:
        entry = next(fleet_entries(db, device), None)
        openings = drawer_log(db, device, without_sale=True, limit=DRAWER_SHOWN)
        recent = jobs(db, device, limit=JOBS_SHOWN)
        desired, reported = configs(db, device)
        logs = latest_logs(db, device)
        malformed = malformed_from(db, device, now)
    finally:
        db.close()
    if entry is None:
        raise click.ClickException(f"no appliance {device!r} has reached this hub")
    if as_json:
        extra = {
            "jobs": [asdict(job) for job in recent],
            "config_desired": msgspec.to_builtins(desired),
            "config_reported": msgspec.to_builtins(reported),
            "config_state": config_state(desired, reported),
            "logs": _logs_json(logs, lines=with_logs),
            "malformed_at_hub": malformed,
        }
        click.echo(json.dumps({**asdict(entry), "chain": entry.chain, **extra}, indent=2))
        return
    table = Table(show_header=False, box=None)
    fields = {
        "device": entry.device,
        "online": "yes" if entry.online else "no",
        "last seen (UTC)": entry.last_seen or "-",
        "bd_seq": str(entry.bd_seq) if entry.bd_seq >= 0 else "-",
        "firmware": entry.firmware or "-",
        "outbox depth": _maybe(entry.outbox_depth),
        "store": entry.store or "none (appliance-hub fleet assign)",
        "catalog": _catalog_text(entry),
        "sales committed up to seq": str(entry.sales_upto_seq),
        "sales rejected by the hub": _rejected_text(entry),
        "journal": _journal_text(entry),
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
    own = telemetry.get("journal") or {}
    if own:
        verdict = (
            f"broken at {own['broken_at']}: {own.get('problem', '')}"
            if own.get("broken_at") is not None
            else ("ok" if own.get("checked_at") else "not checked yet")
        )
        fields["journal on the device"] = (
            f"head {own['head']}, hub confirmed {own['acked_upto']}, own check {verdict}"
        )
    fields["drawer openings without a sale"] = str(entry.drawer_without_sale)
    for opening in openings:
        who = f" by {opening['staff']}" if opening["staff"] else ""
        flag = " (unexplained)" if opening["unexplained"] else ""
        fields[f"  {opening['opened_at']}"] = f"{opening['reason'] or 'no reason'}{who}{flag}"
    for health in telemetry.get("devices") or []:
        reason = f" ({health['reason']})" if health.get("reason") else ""
        fields[f"{health['kind']} {health['device']}"] = f"{health['state']}{reason}"
    fields["malformed messages at the hub"] = str(malformed)
    fields["configuration"] = config_state(desired, reported)
    if desired is not None:
        fields["  desired"] = f"version {desired.version}: {json.dumps(desired.config)}"
    if reported is not None:
        fields["  reported"] = _reported_text(reported)
    fields["command jobs"] = f"latest {len(recent)}" if recent else "none recorded"
    for job in recent:
        fields[f"  {job.id}"] = _job_text(job, now)
    fields["collected logs"] = _logs_text(logs)
    for key, value in fields.items():
        table.add_row(key, value)
    Console().print(table)
    if with_logs and logs is not None:
        click.echo(f"--- {len(logs.lines)} lines from the {logs.source} of {device} ---")
        for line in logs.lines:
            click.echo(line)


@fleet.command("jobs")
@click.argument("device", required=False)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@db_option
@_json_option
def jobs_command(device: str | None, limit: int, db_url: str, as_json: bool) -> None:
    """The latest command jobs (of DEVICE, or of every appliance) with their lifecycle."""
    now = datetime.now(UTC)
    db = open_db(db_url)
    try:
        found = jobs(db, device, limit=limit)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([asdict(job) for job in found], indent=2))
        return
    table = Table("issued (UTC)", "device", "job", "command", "state", "lifecycle")
    for job in found:
        table.add_row(
            job.issued_at or "-",
            job.device,
            job.id,
            _command_text(job),
            _state_text(job, now),
            job.lifecycle(),
        )
    console = Console()
    console.print(table)
    console.print(f"{len(found)} job(s)")


@fleet.command("help")
@click.option("--store", help="Only the appliances of this store.")
@db_option
@_json_option
def help_command(store: str | None, db_url: str, as_json: bool) -> None:
    """The calls for help not cleared yet, urgent first, then oldest first."""
    db = open_db(db_url)
    try:
        calls = open_calls(db, store)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps([asdict(call) for call in calls], indent=2))
        return
    table = Table("opened (UTC)", "device", "store", "reason", "urgency", "state", "by", "detail")
    for call in calls:
        table.add_row(
            call.opened_at,
            call.device,
            call.store or "-",
            call.reason,
            call.urgency,
            call.state,
            call.by or "-",
            call.detail or "-",
        )
    console = Console()
    console.print(table)
    console.print(f"{len(calls)} open call(s) for help")


ARG_LIMIT = 80  # characters of one command argument shown in a listing (--json has all)


def _command_text(job: JobView) -> str:
    if not job.name:
        return "? (the hub did not see it sent)"
    args = " ".join(f"{k}={_shortened(json.dumps(v))}" for k, v in sorted(job.args.items()))
    return f"{job.name} {args}".strip()


def _shortened(text: str, limit: int = ARG_LIMIT) -> str:
    """An argument as a table shows it: an update's whole manifest would fill the screen."""
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


def _state_text(job: JobView, now: datetime) -> str:
    if job.expired_unanswered(now):
        return "SENT, expired without an answer"
    return f"{job.state}: {job.reason}" if job.reason else job.state


def _job_text(job: JobView, now: datetime) -> str:
    issued = f", issued {job.issued_at}" if job.issued_at else ""
    return f"{_command_text(job)}: {_state_text(job, now)} ({job.lifecycle()}{issued})"


def _reported_text(reported: ReportedConfig) -> str:
    text = f"version {reported.version} in force"
    if reported.rejected_version is not None:
        errors = "; ".join(reported.errors) or "no reason given"
        text += f", version {reported.rejected_version} rejected: {errors}"
    return text


def _logs_text(logs: LogsView | None) -> str:
    if logs is None:
        return "none"
    return (
        f"{len(logs.lines)} lines from the {logs.source}, received {logs.received_at} "
        f"(job {logs.command_id or '-'}; `appliance-hub fleet logs` asks again)"
    )


def _logs_json(logs: LogsView | None, *, lines: bool) -> dict[str, Any] | None:
    if logs is None:
        return None
    data = {**asdict(logs), "count": len(logs.lines)}
    if not lines:
        del data["lines"]
    return data


def _catalog_text(entry: FleetEntry) -> str:
    if entry.catalog_version is None:
        return "-"
    held = f"version {entry.catalog_version}"
    if entry.catalog_store and entry.catalog_store != entry.store:
        return f"{held} of store {entry.catalog_store} (not its store: a snapshot is due)"
    return f"{held} of store {entry.catalog_store}" if entry.catalog_store else held


def _rejected_text(entry: FleetEntry) -> str:
    if not entry.rejected_sales and not entry.quarantined_sales:
        return "none"
    device = f", {_maybe(entry.quarantined_sales)} quarantined on the device"
    return f"{entry.rejected_sales}{device} (appliance-hub sales rejected --device {entry.device})"


def _journal_text(entry: FleetEntry) -> str:
    if not entry.journal_entries:
        return "no entries yet"
    text = (
        f"{entry.journal_entries} entries, head {entry.journal_head}, "
        f"committed up to {entry.journal_upto}"
    )
    if entry.journal_broken_at is None:
        return f"{text}, chain ok"
    return f"{text}, chain BROKEN at entry {entry.journal_broken_at}: {entry.journal_break}"


def _telemetry(text: str | None) -> Telemetry | None:
    if not text:
        return None
    try:
        return decode(text.encode("utf-8"), Telemetry)
    except DecodeError:
        return None


def _public(entry: FleetEntry) -> dict[str, object]:
    """The list view's JSON: everything but the raw telemetry."""
    data = asdict(entry)
    del data["telemetry"]
    data["chain"] = entry.chain
    return data


def _maybe(value: object) -> str:
    return "-" if value is None else str(value)
