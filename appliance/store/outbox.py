"""The sync outbox: committed documents waiting for the hub's acknowledgement."""

from __future__ import annotations

from dataclasses import dataclass

from peewee import DatabaseError, SqliteDatabase

from appliance.store.storage_faults import store_error


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One document to send: its device sequence, id and stored JSON."""

    sequence: int
    document_id: str
    payload: bytes


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

    def acknowledge(self, upto_sequence: int) -> int:
        """Drop every row the hub has committed (sequence <= upto); returns how many."""
        with self._db.atomic("IMMEDIATE"):
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
