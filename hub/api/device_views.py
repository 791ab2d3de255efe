"""What the devices API shows of a device, read in a few queries per page, not per device.

The same facts `appliance-hub fleet show` prints: status, the last telemetry as typed
fields, the journal as the hub proved it, the sales the hub rejected, the last sale and
the command jobs. Telemetry is kept as the device sent it; one the hub cannot read any
more (a payload version it no longer knows) shows as none rather than failing the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec
from peewee import Database, fn

from appliance.errors import DecodeError
from appliance.mqtt.commands import TERMINAL_STATES
from appliance.mqtt.payloads import (
    Telemetry,
    decode,
)
from hub.api.paging import rfc3339
from hub.device_answers import JOBS_KEPT, JobView, jobs
from hub.models import DeviceProgress, JournalEntry, JournalState
from hub.models import Sale as SaleRow

RECENT_JOBS = 20  # a device's detail lists this many of its latest jobs

V = TypeVar("V", bound=msgspec.Struct)


class DeviceHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One peripheral as the device reported it (printer, scanner, terminal...)."""

    device: str
    kind: str
    state: str
    reason: str = ""


class StorageState(msgspec.Struct, frozen=True, kw_only=True):
    """The device's data partition: `state` is ok, low, full, read_only or io_error."""

    state: str
    free_bytes: int
    total_bytes: int
    reserve_bytes: int
    problem: str = ""


class OwnJournalCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The device's own check of its fiscal journal."""

    head: int
    acked_upto: int  # the hub confirmed every entry up to here
    checked_at: str | None  # when the device last proved its whole chain
    broken_at: int | None
    problem: str = ""


class OfflineCards(msgspec.Struct, frozen=True, kw_only=True):
    """Card payments taken offline and not yet settled, against the device's limits."""

    count: int
    amount: int
    currency: str
    oldest_age_s: float | None
    max_per_payment: int
    max_total: int
    max_age_s: float
    blocked: str = ""


class StoredValueWaiting(msgspec.Struct, frozen=True, kw_only=True):
    """Stored-value debits the device took offline, or gave back, that the hub has not had."""

    debits: int
    debit_amount: int
    voids: int
    void_amount: int
    currency: str
    oldest_age_s: float | None


class BaggingCounts(msgspec.Struct, frozen=True, kw_only=True):
    """The kiosk's bagging-area check since it started: its alerts and what ended them."""

    mode: Literal["off", "log_only", "enforce"]
    unexpected_item: int
    item_removed: int
    not_bagged: int
    put_right: int  # alerts the customer put right before staff came
    cleared: int  # staff accepted the bag as it was
    skipped_item: int  # staff: skip bagging for this item
    skipped_sale: int  # staff: skip bagging for the rest of the sale


class TelemetryView(msgspec.Struct, frozen=True, kw_only=True):
    """The device's last telemetry report."""

    at: str  # the device's time of the report
    firmware: str
    image_version: str | None  # the system image, when the device reports one
    locked: bool  # a fleet command locked the kiosk: it sells nothing until unlocked
    uptime_s: float
    outbox_depth: int  # sales waiting on the device for the hub's acknowledgement
    catalog_version: int
    catalog_store: str | None  # the store whose catalog the device holds
    quarantined_sales: int  # sales the hub rejected, held on the device for staff
    disk_free_bytes: int
    cpu_temp_c: float | None
    malformed_messages: int
    health: list[DeviceHealth]
    storage: StorageState | None
    journal: OwnJournalCheck | None
    offline_cards: OfflineCards | None
    bagging: BaggingCounts | None  # None: the kiosk does not check its bagging area
    stored_value: StoredValueWaiting | None  # None: an older device, or not read


class JournalView(msgspec.Struct, frozen=True, kw_only=True):
    """The device's fiscal journal as the hub holds and proved it."""

    state: Literal["ok", "broken"]
    entries: int
    head: int  # the highest entry number stored
    upto: int  # every entry up to here is stored (and proven, before a break)
    broken_at: int | None  # the first entry the chain does not prove
    break_reason: str


class LastSale(msgspec.Struct, frozen=True, kw_only=True):
    """The device's newest stored sale (GET /sales/{device}/{id} has all of it)."""

    id: str
    seq: int
    kind: str
    created_at: str
    received_at: str


class JobStep(msgspec.Struct, frozen=True, kw_only=True):
    """One state a command job reached, and when the hub heard of it."""

    state: str
    reason: str
    at: str


class CommandJobView(msgspec.Struct, frozen=True, kw_only=True):
    """A fleet command sent to the device and its lifecycle (SENT is the hub's own state)."""

    id: str
    name: str
    args: dict[str, Any]
    state: str
    reason: str
    issued_at: str
    expires_at: str
    updated_at: str
    pending: bool  # not finished and not expired: the device may still act on it
    history: list[JobStep]


class DeviceView(msgspec.Struct, frozen=True, kw_only=True):
    """A device as the hub last heard of it."""

    id: str
    store: str | None  # the store the device is in (None: in none yet)
    online: bool
    last_seen: str | None
    firmware: str
    sales_upto_seq: int  # every sale up to this sequence is stored at the hub
    rejected_sales: int  # sales the hub kept apart (unreadable or in conflict)
    last_sale: LastSale | None
    telemetry: TelemetryView | None
    journal: JournalView | None


class DeviceDetail(DeviceView, frozen=True, kw_only=True):
    """A device with its command jobs: every pending one, and the latest ones."""

    pending_jobs: list[CommandJobView]
    recent_jobs: list[CommandJobView]


def telemetry_view(text: str | None) -> TelemetryView | None:
    """Stored telemetry JSON as the API shows it; None when there is none or it is unreadable."""
    if not text:
        return None
    raw = text.encode("utf-8")
    try:
        report = decode(raw, Telemetry)
    except DecodeError:
        return None
    own = report.journal
    return TelemetryView(
        at=_time_text(report.at),
        firmware=report.firmware,
        image_version=report.image_version or None,
        locked=report.locked,
        uptime_s=float(report.uptime_s),
        outbox_depth=report.outbox_depth,
        catalog_version=report.catalog_version,
        catalog_store=report.catalog_store or None,
        quarantined_sales=report.quarantined_sales,
        disk_free_bytes=report.disk_free_bytes,
        cpu_temp_c=report.cpu_temp_c,
        malformed_messages=report.malformed_messages,
        health=[
            DeviceHealth(device=h.device, kind=h.kind, state=h.state, reason=h.reason)
            for h in report.devices
        ],
        storage=None
        if report.storage is None
        else StorageState(
            state=report.storage.state,
            free_bytes=report.storage.free_bytes,
            total_bytes=report.storage.total_bytes,
            reserve_bytes=report.storage.reserve_bytes,
            problem=report.storage.problem,
        ),
        journal=None
        if own is None
        else OwnJournalCheck(
            head=own.head,
            acked_upto=own.acked_upto,
            checked_at=_time_text(own.checked_at) or None,
            broken_at=own.broken_at,
            problem=own.problem,
        ),
        offline_cards=_shown(report.offline_cards, OfflineCards),
        bagging=_shown(report.bagging, BaggingCounts),
        stored_value=_shown(report.stored_value, StoredValueWaiting),
    )


def _shown(report: msgspec.Struct | None, view: type[V]) -> V | None:
    """A telemetry section as the API shows it (the fields of the same names), or None."""
    return None if report is None else msgspec.convert(report, view, from_attributes=True)


def journals(db: Database, devices: Sequence[str]) -> dict[str, JournalView]:
    """The hub's journal state of each of `devices` that sent any entry."""
    if not devices:
        return {}
    counts = {
        str(device): (int(count or 0), int(head or 0))
        for device, count, head in JournalEntry.select(
            JournalEntry.device, fn.COUNT(JournalEntry.id), fn.MAX(JournalEntry.number)
        )
        .where(JournalEntry.device.in_(list(devices)))
        .group_by(JournalEntry.device)
        .tuples()
        .execute(db)
    }
    found = {}
    states = JournalState.select().where(JournalState.device.in_(list(devices))).execute(db)
    for state in states:
        entries, head = counts.get(state.device, (0, 0))
        broken = None if state.broken_at is None else int(state.broken_at)
        found[str(state.device)] = JournalView(
            state="ok" if broken is None else "broken",
            entries=entries,
            head=head,
            upto=int(state.upto),
            broken_at=broken,
            break_reason=str(state.break_reason or ""),
        )
    return found


def last_sales(db: Database, devices: Sequence[str], store: str | None) -> dict[str, LastSale]:
    """The newest stored sale of each of `devices` (of `store` only, when given)."""
    if not devices:
        return {}
    newest = SaleRow.select(fn.MAX(SaleRow.id)).where(SaleRow.device.in_(list(devices)))
    if store is not None:
        newest = newest.where(SaleRow.store == store)
    newest = newest.group_by(SaleRow.device)
    query = SaleRow.select(
        SaleRow.device,
        SaleRow.sale_id,
        SaleRow.seq,
        SaleRow.kind,
        SaleRow.created_at,
        SaleRow.received_at,
    ).where(SaleRow.id.in_(newest))
    return {
        str(row.device): LastSale(
            id=str(row.sale_id),
            seq=int(row.seq),
            kind=str(row.kind),
            created_at=rfc3339(row.created_at) or "",
            received_at=rfc3339(row.received_at) or "",
        )
        for row in query.execute(db)
    }


def progress(db: Database, devices: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(sales stored up to seq, sales rejected) of each of `devices` that sent sales."""
    if not devices:
        return {}
    query = (
        DeviceProgress.select(
            DeviceProgress.device, DeviceProgress.upto_seq, DeviceProgress.rejected
        )
        .where(DeviceProgress.device.in_(list(devices)))
        .tuples()
    )
    return {str(d): (int(upto or 0), int(rejected or 0)) for d, upto, rejected in query.execute(db)}


def device_views(
    db: Database, rows: Sequence[dict[str, Any]], *, sales_store: str | None
) -> list[DeviceView]:
    """Views of device rows (Device columns and `store`); `sales_store` limits the last sale."""
    ids = [str(row["id"]) for row in rows]
    chains = journals(db, ids)
    newest = last_sales(db, ids, sales_store)
    counters = progress(db, ids)
    views = []
    for row in rows:
        device = str(row["id"])
        upto, rejected = counters.get(device, (0, 0))
        telemetry = telemetry_view(row["telemetry"])
        views.append(
            DeviceView(
                id=device,
                store=row["store"],
                online=bool(row["online"]),
                last_seen=rfc3339(row["last_seen"]),
                firmware=str(row["firmware"] or (telemetry.firmware if telemetry else "")),
                sales_upto_seq=upto,
                rejected_sales=rejected,
                last_sale=newest.get(device),
                telemetry=telemetry,
                journal=chains.get(device),
            )
        )
    return views


def job_views(db: Database, device: str) -> tuple[list[CommandJobView], list[CommandJobView]]:
    """A device's pending jobs (every one) and its latest RECENT_JOBS jobs, newest first."""
    now = datetime.now(UTC)
    # The hub keeps at most JOBS_KEPT jobs per device: reading them all stays small.
    every = [_job(job, now) for job in jobs(db, device, limit=JOBS_KEPT)]
    return [job for job in every if job.pending], every[:RECENT_JOBS]


def _job(job: JobView, now: datetime) -> CommandJobView:
    expired = job.expired_unanswered(now)
    return CommandJobView(
        id=job.id,
        name=job.name,
        args=job.args,
        state=job.state,
        reason=job.reason,
        issued_at=_time_text(job.issued_at),
        expires_at=_time_text(job.expires_at),
        updated_at=_time_text(job.updated_at),
        pending=job.state not in TERMINAL_STATES and not expired,
        history=[
            JobStep(
                state=str(step[0]),
                reason=str(step[1]) if len(step) > 1 else "",
                at=_time_text(str(step[2])) if len(step) > 2 else "",
            )
            for step in job.history
        ],
    )


def _time_text(text: str) -> str:
    """An ISO time as RFC 3339 with `Z`; text that is no time (or has no offset) as it is."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    return rfc3339(moment) or text
