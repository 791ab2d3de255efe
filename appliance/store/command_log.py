"""The fleet command ids already accepted, durably, so a redelivered command never runs twice.

A reboot command redelivered after a restart (a QoS1 retry, a replay by an attacker) must
not reboot the kiosk in a loop: the ids outlive the process in table `command_seen`
(migration 4).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from peewee import SqliteDatabase

from appliance.core.clock import Clock

# Seen ids are kept this long past their expiry: a Pi without an RTC can boot with a
# clock days behind, and then an expired command must still count as replayed.
SEEN_RETENTION = timedelta(days=7)


class SqliteSeenCommands:
    """Seen command ids in the appliance database; thread-safe as far as SQLite is."""

    def __init__(self, db: SqliteDatabase, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def remember(self, command_id: str, expires_at: datetime) -> bool:
        """Insert the id in its own transaction, dropping ids long past their expiry.

        True when the id was new, False when it was seen before.
        """
        now = self._clock.now().astimezone(UTC)
        with self._db.atomic("IMMEDIATE"):
            # UTC ISO strings of one format compare in time order, so SQLite can prune.
            self._db.execute_sql(
                "DELETE FROM command_seen WHERE expires_at < ?",
                ((now - SEEN_RETENTION).isoformat(),),
            )
            cursor = self._db.execute_sql(
                "INSERT OR IGNORE INTO command_seen (id, expires_at, seen_at) VALUES (?, ?, ?)",
                (command_id, expires_at.astimezone(UTC).isoformat(), now.isoformat()),
            )
            return int(cursor.rowcount) == 1

    def __contains__(self, command_id: object) -> bool:
        """Whether an id is remembered."""
        row = self._db.execute_sql("SELECT 1 FROM command_seen WHERE id = ?", (command_id,))
        return row.fetchone() is not None
