"""The sync outbox: committed documents waiting for the hub's acknowledgement.

A document the hub rejects (it cannot read it, or it conflicts with a sale the hub holds)
leaves the outbox for the quarantine table in the same transaction that drops what the
hub acknowledged, so it neither blocks the stream nor is ever lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from peewee import DatabaseError, SqliteDatabase

from appliance.store.storage_faults import store_error

log = logging.getLogger(__name__)

_QUARANTINE = (
    "INSERT INTO sale_quarantine"
    " (seq, sale_id, document, code, reason, quarantined_at)"
    " SELECT sequence, document_id, payload, ?, ?, ? FROM outbox"
    " WHERE sequence = ? AND document_id = ? AND sequence <= ?"
)
_QUARANTINED = (
    "SELECT q.seq, q.sale_id, COALESCE(d.receipt_number, ''), q.code, q.reason,"
    " q.quarantined_at FROM sale_quarantine q LEFT JOIN document d ON d.id = q.sale_id"
    " ORDER BY q.seq LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One document to send: its device sequence, id and stored JSON."""

    sequence: int
    document_id: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    """The hub's word on one sale it will not count: `code` is invalid or conflict."""

    seq: int
    sale_id: str
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class QuarantinedSale:
    """A sale the hub rejected, held on the device for staff and the fleet admin."""

    seq: int
    sale_id: str
    receipt_number: str  # "" if the document is not in this database
    code: str
    reason: str
    quarantined_at: str  # ISO text as stored


class SalesOutbox:
    """Reads pending rows in sequence order; drops rows only on the hub's acknowledgement.

    Thread-safe as far as SQLite is: each thread uses its own peewee connection.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def pending(self, after: int = 0, limit: int = 500) -> list[OutboxRow]:
        """Up to `limit` rows with a sequence above `after`, oldest first."""
        rows = self._db.execute_sql(
            "SELECT sequence, document_id, payload FROM outbox WHERE sequence > ?"
            " ORDER BY sequence LIMIT ?",
            (after, limit),
        )
        return [OutboxRow(int(s), str(d), bytes(p)) for s, d, p in rows]

    @property
    def db(self) -> SqliteDatabase:
        """The database the outbox lives in."""
        return self._db

    def acknowledge(self, upto_sequence: int, rejected: Iterable[Rejection] = ()) -> int:
        """Quarantine the rejected rows, then drop every row up to `upto`; returns how many left.

        One transaction: a rejected row is never deleted without being quarantined. A
        rejection is applied only to the row holding that very sequence and sale id; one
        naming another sale (the hub's record of another incarnation of this device) is
        only logged.
        """
        now = datetime.now(UTC).isoformat()
        with self._db.atomic("IMMEDIATE"):
            for item in rejected:
                if item.seq > upto_sequence:
                    continue
                cursor = self._db.execute_sql(
                    _QUARANTINE,
                    (item.code, item.reason, now, item.seq, item.sale_id, upto_sequence),
                )
                if cursor.rowcount:
                    log.error(
                        "the hub rejected sale %s (seq %d), kept in quarantine: %s: %s",
                        item.sale_id,
                        item.seq,
                        item.code,
                        item.reason,
                    )
                elif not self._quarantined(item.seq, item.sale_id):
                    log.warning(
                        "the hub rejected sale %s at seq %d, which this device does not hold",
                        item.sale_id,
                        item.seq,
                    )
            cursor = self._db.execute_sql(
                "DELETE FROM outbox WHERE sequence <= ?", (upto_sequence,)
            )
            return int(cursor.rowcount)

    def depth(self) -> int:
        """How many documents wait for the hub; StoreError (saying why) if it cannot be read."""
        try:
            return int(self._db.execute_sql("SELECT COUNT(*) FROM outbox").fetchone()[0])
        except DatabaseError as err:
            raise store_error(err, "the outbox could not be read") from err

    def quarantine_count(self) -> int:
        """How many sales the hub rejected sit in quarantine; StoreError if it cannot be read."""
        try:
            row = self._db.execute_sql("SELECT COUNT(*) FROM sale_quarantine").fetchone()
        except DatabaseError as err:
            raise store_error(err, "the sale quarantine could not be read") from err
        return int(row[0])

    def quarantined(self, limit: int = 100) -> list[QuarantinedSale]:
        """The quarantined sales, lowest sequence first; StoreError if they cannot be read."""
        try:
            rows = self._db.execute_sql(_QUARANTINED, (limit,)).fetchall()
        except DatabaseError as err:
            raise store_error(err, "the sale quarantine could not be read") from err
        return [
            QuarantinedSale(int(seq), str(sid), str(receipt), str(code), str(reason), str(at))
            for seq, sid, receipt, code, reason, at in rows
        ]

    def _quarantined(self, seq: int, sale_id: str) -> bool:
        query = "SELECT 1 FROM sale_quarantine WHERE seq = ? AND sale_id = ?"
        return self._db.execute_sql(query, (seq, sale_id)).fetchone() is not None

    def oldest_sequence(self) -> int | None:
        """The lowest sequence still waiting, or None when empty."""
        row = self._db.execute_sql("SELECT MIN(sequence) FROM outbox").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def oldest_created_at(self) -> str | None:
        """When the oldest waiting document was queued (ISO text as stored), or None."""
        row = self._db.execute_sql(
            "SELECT created_at FROM outbox ORDER BY sequence LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else None
