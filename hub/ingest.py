"""Writing what devices upload: sales exactly once, status (stale wills ignored), telemetry.

The MQTT side (hub/server.py) decodes; every database write it triggers lives here.
A device deletes its outbox rows up to the sequence the hub acknowledges, so that number
must only ever cover sales this hub has durably committed. `SalesIngest.ingest` inserts a
batch idempotently and advances the device's contiguous progress in ONE transaction; the
caller publishes the acknowledgement only after it returns (after the commit).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from peewee import Database

from appliance.core.clock import Clock, SystemClock
from appliance.errors import DecodeError
from appliance.mqtt.payloads import (
    DeviceStatus,
    SaleEnvelope,
    SaleRejection,
    SalesBatch,
    Telemetry,
    encode,
)
from hub.models import Device, DeviceProgress, Sale

log = logging.getLogger(__name__)


class _DocumentSummary(msgspec.Struct, kw_only=True):
    """The fields of a device's sale document the hub indexes; the rest is kept verbatim."""

    id: str | None = None
    sequence: int | None = None
    kind: Literal["sale", "refund", "void"]
    created_at: datetime
    total: int
    currency: str
    clock_verified: bool = True  # documents from before the flag existed were not checked


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one batch did, and the sequence the hub may acknowledge for the device."""

    device: str
    upto_seq: int
    inserted: int
    duplicates: int
    conflicts: tuple[int, ...] = ()  # sequences whose slot holds a different sale
    rejected: tuple[SaleRejection, ...] = ()  # what the acknowledgement lists as rejected


def utc_naive(moment: datetime) -> datetime:
    """A moment as the naive UTC datetime the hub stores (naive input counts as UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def utc_text(value: datetime | str) -> str:
    """A stored naive UTC moment (SQLite may hand back text) as ISO text with its zone."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC, microsecond=0).isoformat()


class SalesIngest:
    """Stores sales batches idempotently; thread-safe (peewee keeps a connection per thread).

    Concurrent workers are serialised per device: SQLite takes its write lock at BEGIN, and
    PostgreSQL locks the device's progress row (SELECT ... FOR UPDATE) before reading it.
    """

    def __init__(self, db: Database, *, clock: Clock | None = None, chunk: int = 500) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._chunk = max(1, chunk)

    def apply(self, device: str, batch: SalesBatch) -> int:
        """Store a batch in one transaction; returns the device's new acknowledgeable seq."""
        return self.ingest(device, batch).upto_seq

    def ingest(self, device: str, batch: SalesBatch) -> IngestResult:
        """Like apply, with what was inserted, already there, or in conflict.

        DecodeError (nothing stored) when the batch names another device or a document
        lacks what the hub indexes. A database error propagates after the rollback.
        """
        now = utc_naive(self._clock.now())
        rows = [self._row(device, envelope, now) for envelope in _checked(device, batch)]
        db = self._db
        with db.atomic():
            (
                Device.insert(id=device, last_seen=now)
                .on_conflict(conflict_target=[Device.id], update={Device.last_seen: now})
                .execute(db)
            )
            DeviceProgress.insert(device=device, upto_seq=0).on_conflict(action="NOTHING").execute(
                db
            )
            current = self._locked_progress(device)
            inserted = 0
            for part in _chunks(rows, self._chunk):
                inserted += int(
                    Sale.insert_many(part).on_conflict(action="NOTHING").as_rowcount().execute(db)
                )
            conflicts = self._conflicts(device, batch.sales)
            upto = self._contiguous(device, current)
            if upto > current:
                (
                    DeviceProgress.update(upto_seq=upto)
                    .where(DeviceProgress.device == device)
                    .execute(db)
                )
        ack = upto
        if conflicts:
            # Acknowledging a conflicting sequence would make the device delete a sale the
            # hub does not hold; stop below it and leave the device resending it.
            ack = max(0, min(upto, conflicts[0] - 1))
            log.error(
                "device %s sent sequences %s with sale ids the hub holds at other sequences "
                "(or other sale ids at those sequences); acknowledging only up to %d",
                device,
                ", ".join(map(str, conflicts[:10])),
                ack,
            )
        result = IngestResult(
            device=device,
            upto_seq=ack,
            inserted=inserted,
            duplicates=len(rows) - inserted - len(conflicts),
            conflicts=tuple(conflicts),
        )
        log.debug("device %s: %s", device, result)
        return result

    def progress(self, device: str) -> int:
        """The highest contiguous sequence committed for a device (0 when none)."""
        query = DeviceProgress.select(DeviceProgress.upto_seq).where(
            DeviceProgress.device == device
        )
        value = query.scalar(self._db)
        return int(value) if value is not None else 0

    def _row(self, device: str, envelope: SaleEnvelope, now: datetime) -> dict[str, Any]:
        raw = bytes(envelope.document)
        try:
            summary = msgspec.json.decode(raw, type=_DocumentSummary)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            raise DecodeError(f"sale {envelope.sale_id} (seq {envelope.seq}): {err}") from err
        if summary.id is not None and summary.id != envelope.sale_id:
            raise DecodeError(
                f"seq {envelope.seq}: document {summary.id} is not {envelope.sale_id}"
            )
        if summary.sequence is not None and summary.sequence != envelope.seq:
            raise DecodeError(f"sale {envelope.sale_id}: document sequence is not {envelope.seq}")
        if len(summary.currency) != 3:
            raise DecodeError(f"sale {envelope.sale_id}: bad currency {summary.currency!r}")
        return {
            "device": device,
            "sale_id": envelope.sale_id,
            "seq": envelope.seq,
            "kind": summary.kind,
            "created_at": utc_naive(summary.created_at),
            "total": summary.total,
            "currency": summary.currency,
            "document": raw.decode("utf-8"),
            "received_at": now,
            "clock_verified": summary.clock_verified,
        }

    def _locked_progress(self, device: str) -> int:
        query = DeviceProgress.select(DeviceProgress.upto_seq).where(
            DeviceProgress.device == device
        )
        if self._db.for_update:  # SQLite has no row locks; BEGIN IMMEDIATE locked the file
            query = query.for_update()
        return int(query.scalar(self._db) or 0)

    def _conflicts(self, device: str, sales: Sequence[SaleEnvelope]) -> list[int]:
        """Sequences of the batch whose stored row is not the sale the device sent."""
        stored: dict[int, str] = {}
        for part in _chunks([envelope.seq for envelope in sales], self._chunk):
            query = (
                Sale.select(Sale.seq, Sale.sale_id)
                .where((Sale.device == device) & Sale.seq.in_(part))
                .tuples()
            )
            stored.update((int(seq), str(sale_id)) for seq, sale_id in query.execute(self._db))
        return sorted({e.seq for e in sales if stored.get(e.seq) != e.sale_id})

    def _contiguous(self, device: str, start: int) -> int:
        """The highest n such that every sequence in (start, n] is stored."""
        upto = start
        while True:
            query = (
                Sale.select(Sale.seq)
                .where((Sale.device == device) & (Sale.seq > upto))
                .order_by(Sale.seq)
                .limit(self._chunk)
                .tuples()
            )
            page = [int(seq) for (seq,) in query.execute(self._db)]
            for seq in page:
                if seq != upto + 1:
                    return upto
                upto = seq
            if len(page) < self._chunk:
                return upto


class DeviceRecords:
    """Device status and telemetry as last heard; thread-safe like SalesIngest."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    def record_status(self, device: str, status: DeviceStatus) -> bool:
        """Store a birth or a will; False when the will is stale (older than the last birth).

        A birth always wins: the device sends it when it is connected right now.
        """
        if status.device != device:
            raise DecodeError(f"a status on {device}'s topic names {status.device!r}")
        now = utc_naive(self._clock.now())
        db = self._db
        with db.atomic():
            if status.online:
                update: dict[Any, Any] = {
                    Device.online: True,
                    Device.bd_seq: status.bd_seq,
                    Device.last_seen: now,
                }
                if status.firmware:
                    update[Device.firmware] = status.firmware
                Device.insert(
                    id=device,
                    online=True,
                    bd_seq=status.bd_seq,
                    firmware=status.firmware,
                    last_seen=now,
                ).on_conflict(conflict_target=[Device.id], update=update).execute(db)
                current = True
            else:
                Device.insert(id=device, online=False, bd_seq=status.bd_seq).on_conflict(
                    action="NOTHING"
                ).execute(db)
                # A will older than the last birth belongs to a session already replaced;
                # the comparison runs inside the UPDATE, so concurrent workers cannot race it.
                current = bool(
                    Device.update(online=False)
                    .where((Device.id == device) & (Device.bd_seq <= status.bd_seq))
                    .execute(db)
                )
        if current:
            state = "online" if status.online else "offline"
            log.info("device %s %s (bd_seq %d)", device, state, status.bd_seq)
        else:
            log.info("ignored a stale will of %s (bd_seq %d)", device, status.bd_seq)
        return current

    def record_telemetry(self, device: str, report: Telemetry) -> None:
        """Keep a device's latest telemetry (as JSON), firmware and last-seen time."""
        if report.device != device:
            raise DecodeError(f"telemetry on {device}'s topic names {report.device!r}")
        now = utc_naive(self._clock.now())
        text = encode(report).decode("utf-8")
        (
            Device.insert(id=device, last_seen=now, firmware=report.firmware, telemetry=text)
            .on_conflict(
                conflict_target=[Device.id],
                update={
                    Device.last_seen: now,
                    Device.firmware: report.firmware,
                    Device.telemetry: text,
                },
            )
            .execute(self._db)
        )


def _checked(device: str, batch: SalesBatch) -> list[SaleEnvelope]:
    """The batch's envelopes, refused whole when it claims another device or a bad seq."""
    if batch.device != device:
        raise DecodeError(f"a batch on {device}'s topic names device {batch.device!r}")
    for envelope in batch.sales:
        if envelope.seq < 1:
            raise DecodeError(f"sale {envelope.sale_id}: sequence {envelope.seq} is below 1")
        if not envelope.sale_id:
            raise DecodeError(f"seq {envelope.seq}: empty sale id")
    return batch.sales


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
