"""The hub link's birth/death session counter (Sparkplug's bdSeq), kept in the `meta` table.

Every connect attempt takes the next number and puts it in both the Last Will and the
birth, so the hub can tell a stale will (from a session already replaced) from a real
death. The number is durable: a restarted appliance never reuses one the hub has seen.
"""

from __future__ import annotations

import logging
import threading

from peewee import SqliteDatabase

log = logging.getLogger(__name__)

KEY = "mqtt_bd_seq"

_READ = "SELECT value FROM meta WHERE key = ?"
_WRITE = (
    "INSERT INTO meta (key, value) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


class SessionStore:
    """The durable bd_seq counter.

    Thread-safe: paho's thread advances it right before each CONNECT (the will must be
    set by then); each thread uses its own peewee connection.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._lock = threading.Lock()

    def current(self) -> int:
        """The last number handed out; 0 before the first connect attempt."""
        row = self._db.execute_sql(_READ, (KEY,)).fetchone()
        return _as_int(row[0]) if row else 0

    def advance(self) -> int:
        """Take, persist and return the next number (one IMMEDIATE transaction)."""
        with self._lock, self._db.atomic("IMMEDIATE"):
            following = self.current() + 1
            self._db.execute_sql(_WRITE, (KEY, str(following)))
        log.debug("mqtt session %d", following)
        return following


def _as_int(value: object) -> int:
    """The stored text as a number; a damaged value restarts the count above nothing."""
    try:
        return int(str(value))
    except ValueError:
        log.error("meta %s holds %r, not a number; starting the session count again", KEY, value)
        return 0
