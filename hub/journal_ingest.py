"""Writing devices' fiscal journals: each entry once, the chain verified as entries arrive.

A device keeps its journal for good and remembers the number the hub acknowledges, so
that number must only cover entries this hub has durably committed. `JournalIngest.ingest`
stores a batch idempotently on (device, number), proves the newly contiguous run against
the stored entry before it (hub/journal_views.py fills the report, drawer and shift
tables from the new entries), and advances the device's progress, all in ONE transaction;
the caller acknowledges only after it returns.

A break (an entry whose hash does not recompute, that does not link to the one before,
or that differs from the copy already held) is recorded with the first bad number and
why, and the entry is still stored and acknowledged: resending cannot mend it, and the
device must not resend it forever. `appliance-hub fleet show` reports the break.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peewee import Database, fn

from appliance.core.clock import Clock, SystemClock
from appliance.core.journal import ChainBreak, JournalEntry, verify_chain
from appliance.errors import DecodeError
from appliance.mqtt.payloads import JournalBatch, JournalEntryPayload
from hub import models
from hub.ingest import utc_naive
from hub.journal_views import rows_of
from hub.models import Device, JournalState
from hub.stores import store_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JournalResult:
    """What one batch did, and the number the hub may acknowledge for the device."""

    device: str
    upto: int
    inserted: int
    duplicates: int
    broken_at: int | None  # the device's first break as the hub knows it (None: intact)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ChainState:
    """A device's journal at the hub: committed run, count, head and first break."""

    device: str
    upto: int
    entries: int
    head: int
    broken_at: int | None
    reason: str

    @property
    def ok(self) -> bool:
        """True while every stored entry up to `upto` proves the chain."""
        return self.broken_at is None


class JournalIngest:
    """Stores journal batches idempotently; thread-safe like SalesIngest.

    Concurrent workers are serialised per device: SQLite takes its write lock at BEGIN, and
    PostgreSQL locks the device's journal_state row (SELECT ... FOR UPDATE) first.
    """

    def __init__(self, db: Database, *, clock: Clock | None = None, chunk: int = 500) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._chunk = max(1, chunk)

    def ingest(self, device: str, batch: JournalBatch) -> JournalResult:
        """Store a batch in one transaction; DecodeError (nothing stored) for a bad batch."""
        entries = _checked(device, batch)
        now = utc_naive(self._clock.now())
        db = self._db
        with db.atomic():
            (
                Device.insert(id=device, last_seen=now)
                .on_conflict(conflict_target=[Device.id], update={Device.last_seen: now})
                .execute(db)
            )
            JournalState.insert(device=device).on_conflict(action="NOTHING").execute(db)
            state = self._locked_state(device)
            held = self._held(device, [e.number for e in entries])
            fresh = [e for e in entries if e.number not in held]
            breaks = [
                ChainBreak(e.number, "it differs from the copy the hub already holds")
                for e in entries
                if e.number in held and held[e.number] != e.hash
            ]
            store = store_of(db, device) if fresh else None
            for part in _chunks(fresh, self._chunk):
                rows = [_entry_row(device, e, now) for e in part]
                models.JournalEntry.insert_many(rows).on_conflict(action="NOTHING").execute(db)
            for entry in fresh:
                for model, row in rows_of(device, store, entry, now):
                    model.insert(row).on_conflict(action="NOTHING").execute(db)
            upto, found = self._advance(device, int(state.upto), state.broken_at is not None)
            if found is not None:
                breaks.append(found)
            broken_at, reason = state.broken_at, state.break_reason
            first = min(breaks, key=lambda b: b.number, default=None)
            if first is not None and (broken_at is None or first.number < broken_at):
                broken_at, reason = first.number, first.reason
                log.error(
                    "device %s: its fiscal journal breaks at entry %d: %s",
                    device,
                    first.number,
                    first.reason,
                )
            (
                JournalState.update(
                    upto=upto,
                    broken_at=broken_at,
                    break_reason=reason,
                    broken_seen_at=now if broken_at != state.broken_at else state.broken_seen_at,
                )
                .where(JournalState.device == device)
                .execute(db)
            )
        result = JournalResult(
            device=device,
            upto=upto,
            inserted=len(fresh),
            duplicates=len(entries) - len(fresh),
            broken_at=broken_at,
            reason=reason,
        )
        log.debug("device %s journal: %s", device, result)
        return result

    def state(self, device: str) -> ChainState | None:
        """The device's journal as the hub holds it, or None when none arrived."""
        return chain_state(self._db, device)

    def _locked_state(self, device: str) -> Any:
        query = JournalState.select().where(JournalState.device == device)
        if self._db.for_update:  # SQLite has no row locks; BEGIN IMMEDIATE locked the file
            query = query.for_update()
        return query.get(self._db)

    def _held(self, device: str, numbers: Sequence[int]) -> dict[int, str]:
        """Number -> hash of the batch's entries already stored."""
        held: dict[int, str] = {}
        table = models.JournalEntry
        for part in _chunks(numbers, self._chunk):
            query = (
                table.select(table.number, table.hash)
                .where((table.device == device) & table.number.in_(part))
                .tuples()
            )
            held.update((int(n), str(h)) for n, h in query.execute(self._db))
        return held

    def _advance(self, device: str, upto: int, broken: bool) -> tuple[int, ChainBreak | None]:
        """Walk the stored run after `upto`: how far it is contiguous, and its first break.

        Once a device's chain is broken, later entries are stored and counted but not
        proven again: the first break is what the fleet admin must look at.
        """
        previous = self._entry(device, upto) if upto else None
        found: ChainBreak | None = None
        while True:
            page = self._page(device, upto)
            run: list[JournalEntry] = []
            for entry in page:
                if entry.number != upto + len(run) + 1:
                    break
                run.append(entry)
            if run and not broken and found is None:
                found = verify_chain(run, after=previous)
            if run:
                upto, previous = run[-1].number, run[-1]
            if len(run) < self._chunk:
                return upto, found

    def _page(self, device: str, after: int) -> list[JournalEntry]:
        table = models.JournalEntry
        query = (
            table.select(
                table.number, table.kind, table.at, table.body, table.prev_hash, table.hash
            )
            .where((table.device == device) & (table.number > after))
            .order_by(table.number)
            .limit(self._chunk)
            .tuples()
        )
        return [_core_entry(row) for row in query.execute(self._db)]

    def _entry(self, device: str, number: int) -> JournalEntry | None:
        table = models.JournalEntry
        query = (
            table.select(
                table.number, table.kind, table.at, table.body, table.prev_hash, table.hash
            )
            .where((table.device == device) & (table.number == number))
            .tuples()
        )
        found = list(query.execute(self._db))
        return _core_entry(found[0]) if found else None


def chain_state(db: Database, device: str) -> ChainState | None:
    """A device's journal at the hub (fleet show), or None when no entry arrived."""
    found = list(
        JournalState.select(JournalState.upto, JournalState.broken_at, JournalState.break_reason)
        .where(JournalState.device == device)
        .tuples()
        .execute(db)
    )
    if not found:
        return None
    upto, broken_at, reason = found[0]
    table = models.JournalEntry
    count, head = (
        table.select(fn.COUNT(table.id), fn.MAX(table.number))
        .where(table.device == device)
        .tuples()
        .execute(db)[0]
    )
    return ChainState(
        device=device,
        upto=int(upto),
        entries=int(count or 0),
        head=int(head or 0),
        broken_at=None if broken_at is None else int(broken_at),
        reason=str(reason or ""),
    )


def _core_entry(row: tuple[Any, ...]) -> JournalEntry:
    number, kind, at, body, prev_hash, own_hash = row
    return JournalEntry(int(number), str(kind), str(at), bytes(body), str(prev_hash), str(own_hash))


def _entry_row(device: str, entry: JournalEntry, now: datetime) -> dict[str, Any]:
    return {
        "device": device,
        "number": entry.number,
        "kind": entry.kind,
        "at": entry.at,
        "body": entry.body,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "received_at": now,
    }


def _checked(device: str, batch: JournalBatch) -> list[JournalEntry]:
    """The batch's entries, refused whole when it claims another device or holds nonsense."""
    if batch.device != device:
        raise DecodeError(f"a journal batch on {device}'s topic names device {batch.device!r}")
    entries = {e.number: e for e in reversed(batch.entries)}  # a number twice: the first
    return [_decoded(entries[n]) for n in sorted(entries)]


def _decoded(payload: JournalEntryPayload) -> JournalEntry:
    if payload.number < 1:
        raise DecodeError(f"journal entry number {payload.number} is below 1")
    if not payload.kind or len(payload.kind) > 32:
        raise DecodeError(f"journal entry {payload.number}: bad kind {payload.kind[:40]!r}")
    if len(payload.hash) > 64 or len(payload.prev_hash) > 64 or len(payload.at) > 64:
        raise DecodeError(f"journal entry {payload.number}: a hash or time is too long")
    try:
        body = base64.b64decode(payload.body, validate=True)
    except (binascii.Error, ValueError) as err:
        raise DecodeError(f"journal entry {payload.number}: body is not base64: {err}") from err
    return JournalEntry(
        payload.number, payload.kind, payload.at, body, payload.prev_hash, payload.hash
    )


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
