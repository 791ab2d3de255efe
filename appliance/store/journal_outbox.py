"""The fiscal journal as an upload outbox: entries stay forever, the hub's ack is remembered.

Unlike the sales outbox nothing is deleted on acknowledgement (the journal is the device's
fiscal record); the highest number the hub confirmed lives in the `meta` table under
`journal_acked_upto` and only ever grows.
"""

from __future__ import annotations

from peewee import SqliteDatabase

from appliance.core.journal import JournalEntry
from appliance.store.journal import ACKED_KEY, FiscalJournal

# MAX keeps the number from going back if an older acknowledgement arrives late.
_RECORD = (
    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
    " value = CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)"
)


class JournalOutbox:
    """Pending entries above the acknowledged number; thread-safe as far as SQLite is."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._journal = FiscalJournal(db)

    def pending(self, after: int, limit: int) -> list[JournalEntry]:
        """Up to `limit` entries numbered above `after`, oldest first."""
        return self._journal.entries(after=after, limit=limit)

    def acked_upto(self) -> int:
        """The highest entry number the hub confirmed it holds (0 before the first)."""
        return self._journal.acked_upto()

    def head(self) -> int:
        """The newest entry's number (0 when the journal is empty)."""
        head = self._journal.head()
        return head.number if head is not None else 0

    def acknowledge(self, upto: int) -> int:
        """Remember that the hub holds every entry up to `upto`; returns how many were new."""
        with self._db.atomic("IMMEDIATE"):
            before = self.acked_upto()
            self._db.execute_sql(_RECORD, (ACKED_KEY, str(upto)))
        return max(0, upto - before)

    def waiting(self) -> int:
        """How many entries the hub has not confirmed yet."""
        return max(0, self.head() - self.acked_upto())
