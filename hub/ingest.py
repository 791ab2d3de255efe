"""Writing what devices upload: sales exactly once, status (stale wills ignored), telemetry.

The MQTT side (hub/server.py) decodes; every database write it triggers lives here.
A device deletes its outbox rows up to the sequence the hub acknowledges, so that number
must only ever cover sales this hub has durably committed. `SalesIngest.ingest` inserts a
batch idempotently and advances the device's contiguous progress in ONE transaction; the
caller publishes the acknowledgement only after it returns (after the commit).

A sale's e-receipt token is stored as its hash, in the document too (hub/receipts), so
a copy of the database opens no receipt link; otherwise the document is kept as sent.
A sale the hub cannot count (a document it cannot read, or one in conflict with a sale
it holds) is kept verbatim (but for its token) in `sale_rejection` and counts as held for
the progress, so it never stalls the device's stream; the acknowledgement names it, and
the device keeps its copy in quarantine instead of deleting it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from peewee import SQL, Database

from appliance.core.clock import Clock, SystemClock
from appliance.core.ids import receipt_token_time
from appliance.errors import DecodeError
from appliance.mqtt.payloads import (
    MAX_REJECTIONS_PER_ACK,
    DeviceStatus,
    SaleDocument,
    SaleEnvelope,
    SaleRejection,
    SalesBatch,
    Telemetry,
    encode,
)
from hub import telemetry_history
from hub.cached_insert import CachedInsert
from hub.models import Device, DeviceProgress, Sale
from hub.models import SaleRejection as RejectionRow
from hub.prepared import Prepared
from hub.receipts.models import (
    REDACTED,
    ReceiptToken,
    redact_token,
    token_hash,
    void_contested,
)
from hub.stores import DeviceStore

log = logging.getLogger(__name__)

MAX_SALE_ID = 64  # the hub's column; a longer id cannot even be kept as a rejection
# What peewee adds to a new device row, in its field order: the fields with defaults.
_NEW_DEVICE = (Device.online.default, Device.bd_seq.default, Device.firmware.default)


class _Stamp(msgspec.Struct):
    """created_at read the way every reader of stored sales reads it (RFC 3339)."""

    created_at: datetime


class _Token(msgspec.Struct):
    """Only the e-receipt token of a document, to redact a resend or a rejection."""

    receipt_token: str = ""


_document_decoder = msgspec.json.Decoder(SaleDocument)
_stamp_decoder = msgspec.json.Decoder(_Stamp)
_token_decoder = msgspec.json.Decoder(_Token)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one batch did, and the sequence the hub may acknowledge for the device."""

    device: str
    upto_seq: int
    inserted: int
    duplicates: int
    conflicts: tuple[int, ...] = ()  # sequences of this batch rejected as conflicts
    rejected: tuple[SaleRejection, ...] = ()  # what the acknowledgement lists as rejected
    invalid: tuple[int, ...] = ()  # sequences of this batch rejected as unreadable
    store: str | None = None  # the device's store as the batch was stored


@dataclass(frozen=True, slots=True)
class _Held:
    """What the hub holds for the sequences and sale ids of a batch (updated as it goes)."""

    by_seq: dict[int, tuple[str, bytes]]  # seq -> (sale id, document)
    by_id: dict[str, int]  # sale id -> seq
    rejected: set[tuple[int, str]]  # (seq, sale id) already kept as rejections


@dataclass(slots=True)
class _Sorted:
    """A batch sorted into new sales, new rejections and resends."""

    rows: list[dict[str, Any]]
    rejections: list[dict[str, Any]]
    duplicates: int = 0
    receipts: list[dict[str, Any]] = field(default_factory=list)  # e-receipt token rows


def utc_naive(moment: datetime) -> datetime:
    """A moment as the naive UTC datetime the hub stores (naive input counts as UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def utc_text(value: datetime | str) -> str:
    """A stored naive UTC moment (SQLite may hand back text) as ISO text with its zone."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC, microsecond=0).isoformat()


def read_document(envelope: SaleEnvelope) -> tuple[SaleDocument, datetime, str] | str:
    """The envelope's document, its moment and its text; or why the hub cannot accept it."""
    raw = bytes(envelope.document)
    try:
        document = _document_decoder.decode(raw)
        stamp = _stamp_decoder.decode(raw).created_at
        text = raw.decode("utf-8")
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        return f"the document is not a SaleDocument: {err}"
    except UnicodeDecodeError:
        return "the document is not UTF-8"
    except RecursionError:
        return "the document is nested too deeply"
    if document.id != envelope.sale_id:
        return f"the document's id {document.id!r} is not the sale id {envelope.sale_id!r}"
    if document.sequence != envelope.seq:
        return f"the document's sequence {document.sequence} is not seq {envelope.seq}"
    if stamp.tzinfo is None:
        return f"the document's created_at {document.created_at!r} has no UTC offset"
    return document, stamp, text


# (device, the sale rows just inserted), run inside the batch's transaction: whatever it
# writes (webhook events) commits with the sales or not at all. It must not publish.
StoredSales = Callable[[str, Sequence[Mapping[str, Any]]], None]


class SalesIngest:
    """Stores sales batches idempotently; thread-safe (peewee keeps a connection per thread).

    Concurrent workers are serialised per device: SQLite takes its write lock at BEGIN, and
    PostgreSQL locks the device's progress row (SELECT ... FOR UPDATE) before reading it.
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        chunk: int = 500,
        on_stored: StoredSales | None = None,
    ) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._chunk = max(1, chunk)
        self._on_stored = on_stored
        # peewee would render every statement's SQL for every batch: more CPU than SQLite's
        # own work for a batch of one sale.
        self._sale_insert = CachedInsert(Sale)
        self._receipt_insert = CachedInsert(ReceiptToken)
        self._sql = Prepared(db)

    def apply(self, device: str, batch: SalesBatch) -> int:
        """Store a batch in one transaction; returns the device's new acknowledgeable seq."""
        return self.ingest(device, batch).upto_seq

    def ingest(self, device: str, batch: SalesBatch) -> IngestResult:
        """Store new sales, keep what cannot be counted as rejections, and say what to ack.

        DecodeError (nothing stored) when the batch itself is malformed: it names another
        device or carries a sale id the hub cannot keep. A database error propagates after
        the rollback.
        """
        envelopes = _checked(device, batch)
        now = utc_naive(self._clock.now())
        db = self._db
        sql = self._sql
        with db.atomic():
            sql.execute(
                "device seen",
                [device, now, *_NEW_DEVICE, now],
                lambda: Device.insert(id=device, last_seen=now).on_conflict(
                    conflict_target=[Device.id], update={Device.last_seen: now}
                ),
            )
            sql.execute(
                "progress row",
                [device, 0, 0],
                lambda: DeviceProgress.insert(device=device, upto_seq=0, rejected=0).on_conflict(
                    action="NOTHING"
                ),
            )
            # Everything below reads after this lock: a concurrent worker's batch for the
            # same device is either wholly visible or not yet begun.
            current, rejected_before = self._locked_progress(device)
            any_rejected = rejected_before > 0
            held = self._held(device, envelopes, with_rejections=any_rejected)
            store = self._store_of(device)
            sorted_ = self._sort(device, envelopes, held, now, store)
            inserted = 0
            for part in _chunks(sorted_.rows, self._chunk):
                inserted += self._sale_insert.execute(db, part)
            # With the sales or not at all: a receipt link never opens a sale not stored.
            for part in _chunks(sorted_.receipts, self._chunk):
                if self._receipt_insert.execute(db, part) < len(part):
                    void_contested(db, part)  # rare: only a copied token skips its row
            kept = 0
            for part in _chunks(sorted_.rejections, self._chunk):
                kept += int(
                    RejectionRow.insert_many(part)
                    .on_conflict(action="NOTHING")
                    .as_rowcount()
                    .execute(db)
                )
            if sorted_.rows and self._on_stored is not None:
                self._on_stored(device, sorted_.rows)  # in this transaction: all or nothing
            any_rejected = any_rejected or kept > 0
            upto = self._contiguous(device, current, with_rejections=any_rejected)
            if upto > current or kept:
                sql.execute(
                    "progress",
                    [upto, kept, device],
                    lambda: DeviceProgress.update(
                        upto_seq=upto, rejected=DeviceProgress.rejected + kept
                    ).where(DeviceProgress.device == device),
                )
            ack, listed = upto, tuple[SaleRejection, ...]()
            if any_rejected:
                ack, listed = self._listed(device, _listed_from(batch, upto), upto)
        new = sorted_.rejections
        if new:
            log.warning(
                "device %s: %d sales rejected: %s",
                device,
                len(new),
                "; ".join(f"seq {r['seq']} {r['code']}: {r['reason']}" for r in new[:5]),
            )
        result = IngestResult(
            device=device,
            upto_seq=ack,
            inserted=inserted,
            duplicates=sorted_.duplicates,
            conflicts=tuple(r["seq"] for r in new if r["code"] == "conflict"),
            rejected=listed,
            invalid=tuple(r["seq"] for r in new if r["code"] == "invalid"),
            store=store,
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

    def _sort(
        self,
        device: str,
        envelopes: Sequence[SaleEnvelope],
        held: _Held,
        now: datetime,
        store: str | None,
    ) -> _Sorted:
        """New sales, new rejections and resends, in batch order (later ones see earlier)."""
        out = _Sorted(rows=[], rejections=[])
        for envelope in envelopes:
            seq, sale_id, raw = envelope.seq, envelope.sale_id, bytes(envelope.document)
            stored = held.by_seq.get(seq)
            if stored is not None and stored[0] == sale_id:
                # Stored with its token redacted: a resend still holds the token itself.
                if stored[1] == raw or stored[1] == _redacted(raw):
                    out.duplicates += 1  # a resend of a stored sale
                    continue
                problem = (
                    "conflict",
                    f"sale {sale_id} is stored at seq {seq} with other content",
                )
            elif (seq, sale_id) in held.rejected:
                out.duplicates += 1  # a resend of a sale already kept as rejected
                continue
            elif stored is not None:
                problem = ("conflict", f"seq {seq} holds sale {stored[0]}")
            elif sale_id in held.by_id:
                problem = ("conflict", f"sale {sale_id} is stored at seq {held.by_id[sale_id]}")
            else:
                readable = read_document(envelope)
                if not isinstance(readable, str):
                    row = _sale_row(device, envelope, readable, now, store)
                    out.rows.append(row)
                    if receipt_token_time(readable[0].receipt_token) is not None:
                        out.receipts.append(_receipt_row(device, envelope, readable[0]))
                    held.by_seq[seq] = (sale_id, row["document"].encode("utf-8"))
                    held.by_id[sale_id] = seq
                    continue
                problem = ("invalid", readable)
            code, reason = problem
            out.rejections.append(
                {
                    "device": device,
                    "seq": seq,
                    "sale_id": sale_id,
                    "code": code,
                    "reason": reason,
                    "document": _redacted(raw),
                    "received_at": now,
                }
            )
            held.rejected.add((seq, sale_id))
        return out

    def _held(
        self, device: str, envelopes: Sequence[SaleEnvelope], *, with_rejections: bool
    ) -> _Held:
        """The stored sales at the batch's sequences or with its sale ids, and its rejections."""
        held = _Held(by_seq={}, by_id={}, rejected=set())
        wanted = {e.seq for e in envelopes}
        seqs, ids = sorted(wanted), sorted({e.sale_id for e in envelopes})
        for start in range(0, max(len(seqs), len(ids)), self._chunk):
            seq_part = seqs[start : start + self._chunk]
            id_part = ids[start : start + self._chunk]

            # One query for both: each condition has its index, and a batch's sales are new
            # far more often than not, so this mostly finds nothing.
            def query(seq_part: list[int] = seq_part, id_part: list[str] = id_part) -> Any:
                either = Sale.seq.in_(seq_part) | Sale.sale_id.in_(id_part)
                return Sale.select(Sale.seq, Sale.sale_id, Sale.document).where(
                    (Sale.device == device) & either
                )

            shape = ("held sales", len(seq_part), len(id_part))
            for seq, sale_id, document in self._sql.rows(
                shape, [device, *seq_part, *id_part], query
            ):
                held.by_id[str(sale_id)] = int(seq)
                if int(seq) in wanted:
                    held.by_seq[int(seq)] = (str(sale_id), str(document).encode("utf-8"))
            if not with_rejections:
                continue  # the device has none: no need to look
            rejected = (
                RejectionRow.select(RejectionRow.seq, RejectionRow.sale_id)
                .where((RejectionRow.device == device) & RejectionRow.seq.in_(seq_part))
                .tuples()
            )
            held.rejected.update((int(seq), str(sid)) for seq, sid in rejected.execute(self._db))
        return held

    def _locked_progress(self, device: str) -> tuple[int, int]:
        """The device's progress and how many of its sales are rejections, row locked."""

        def query() -> Any:
            query = DeviceProgress.select(DeviceProgress.upto_seq, DeviceProgress.rejected).where(
                DeviceProgress.device == device
            )
            if self._db.for_update:  # SQLite has no row locks; BEGIN IMMEDIATE locked the file
                query = query.for_update()
            return query

        row = self._sql.rows("locked progress", [device], query)
        upto, rejected = row[0] if row else (0, 0)
        return int(upto or 0), int(rejected or 0)

    def _store_of(self, device: str) -> str | None:
        """The store the device belongs to (hub/stores.py's store_of, prepared)."""
        row = self._sql.rows(
            "store",
            [device],
            lambda: DeviceStore.select(DeviceStore.store).where(DeviceStore.device == device),
        )
        return str(row[0][0]) if row else None

    def _contiguous(self, device: str, start: int, *, with_rejections: bool) -> int:
        """The highest n such that every sequence in (start, n] is stored or rejected."""
        upto = start
        while True:

            def query(upto: int = upto) -> Any:
                held: Any = Sale.select(Sale.seq).where((Sale.device == device) & (Sale.seq > upto))
                if with_rejections:
                    held = held | RejectionRow.select(RejectionRow.seq).where(
                        (RejectionRow.device == device) & (RejectionRow.seq > upto)
                    )
                return held.order_by(SQL("1")).limit(self._chunk)

            if with_rejections:
                params = [device, upto, device, upto, self._chunk]
            else:
                params = [device, upto, self._chunk]
            shape = ("held sequences", with_rejections)
            page = [int(seq) for (seq,) in self._sql.rows(shape, params, query)]
            for seq in page:
                if seq != upto + 1:
                    return upto
                upto = seq
            if len(page) < self._chunk:
                return upto

    def _listed(self, device: str, floor: int, upto: int) -> tuple[int, tuple[SaleRejection, ...]]:
        """The ack and the rejections it names: every one in (floor, upto], at most the cap.

        Past the cap the ack stops below the first rejection not named, so the device never
        deletes a row it was not told is rejected; its next batch asks from there.
        """
        if floor >= upto:
            return upto, ()
        query = (
            RejectionRow.select(
                RejectionRow.seq, RejectionRow.sale_id, RejectionRow.code, RejectionRow.reason
            )
            .where(
                (RejectionRow.device == device)
                & (RejectionRow.seq > floor)
                & (RejectionRow.seq <= upto)
            )
            .order_by(RejectionRow.seq, RejectionRow.id)
            .limit(MAX_REJECTIONS_PER_ACK + 1)
            .tuples()
        )
        found = [
            SaleRejection(seq=int(seq), sale_id=str(sid), code=code, reason=str(reason))
            for seq, sid, code, reason in query.execute(self._db)
        ]
        if len(found) > MAX_REJECTIONS_PER_ACK:
            upto = max(floor, found[MAX_REJECTIONS_PER_ACK].seq - 1)
        return upto, tuple(r for r in found[:MAX_REJECTIONS_PER_ACK] if r.seq <= upto)


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
        """Keep a device's latest telemetry (JSON), firmware, last-seen time and a history point."""
        if report.device != device:
            raise DecodeError(f"telemetry on {device}'s topic names {report.device!r}")
        now = utc_naive(self._clock.now())
        text = encode(report).decode("utf-8")
        with self._db.atomic():
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
            telemetry_history.record(self._db, device, report, now)


def _checked(device: str, batch: SalesBatch) -> list[SaleEnvelope]:
    """The batch's envelopes, refused whole when it claims another device or a bad envelope."""
    if batch.device != device:
        raise DecodeError(f"a batch on {device}'s topic names device {batch.device!r}")
    for envelope in batch.sales:
        if envelope.seq < 1:  # the payload's own bound; kept for a caller's hand-made batch
            raise DecodeError(f"sale {envelope.sale_id}: sequence {envelope.seq} is below 1")
        if not 0 < len(envelope.sale_id) <= MAX_SALE_ID:
            raise DecodeError(
                f"seq {envelope.seq}: a sale id of {len(envelope.sale_id)} characters"
            )
    return batch.sales


def _listed_from(batch: SalesBatch, upto: int) -> int:
    """The sequence above which the ack names rejections: what the device says it applied.

    A device that does not say (older firmware) hears of those in this batch's range.
    """
    if batch.acked_upto is not None:
        return batch.acked_upto
    if batch.sales:
        return min(e.seq for e in batch.sales) - 1
    return upto


def _sale_row(
    device: str,
    envelope: SaleEnvelope,
    readable: tuple[SaleDocument, datetime, str],
    now: datetime,
    store: str | None,
) -> dict[str, Any]:
    """The `sale` row of a document read_document found readable."""
    document, created_at, text = readable
    return {
        "device": device,
        "sale_id": envelope.sale_id,
        "seq": envelope.seq,
        "kind": document.kind,
        "created_at": utc_naive(created_at),
        "total": document.total,
        "currency": document.currency,
        "document": redact_token(text, document.receipt_token),
        "received_at": now,
        "clock_verified": document.clock_verified,
        "store": store,
    }


def _receipt_row(device: str, envelope: SaleEnvelope, document: SaleDocument) -> dict[str, Any]:
    """The `receipt_token` row of a sale whose document carries a well-formed token.

    A token already held (only a device copying another's could make one) then opens
    neither sale (void_contested): not whichever reached the hub first.
    """
    return {
        "token_hash": token_hash(document.receipt_token),
        "device": device,
        "sale_id": envelope.sale_id,
    }


def _redacted(raw: bytes) -> bytes:
    """A document as sent with its token replaced by the token's hash, as the hub keeps it."""
    try:
        token = _token_decoder.decode(raw).receipt_token
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return raw  # unreadable: no token to find, and kept as sent
    if receipt_token_time(token) is None:
        return raw
    return raw.replace(token.encode("ascii"), (REDACTED + token_hash(token)).encode("ascii"))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
