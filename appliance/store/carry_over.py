"""What a database restore must carry over from the database it replaces.

Putting a snapshot back (an update's rollback, appliance/update/boot.py) must not turn
back what promises never to go back: the hub session counter (appliance.store.hub_session:
a reused session's late will would be taken for the live one) and the seen command ids
(appliance.store.command_log: a replayed command would run again).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_BD_SEQ = "mqtt_bd_seq"  # appliance.store.hub_session's key


@dataclass(frozen=True, slots=True)
class CarriedOver:
    """The session counter and seen command ids of a database about to be replaced."""

    bd_seq: int = 0
    seen: tuple[tuple[str, str, str], ...] = ()  # command_seen (id, expires_at, seen_at)

    @classmethod
    def read(cls, database: Path) -> CarriedOver:
        """Read-only, WAL included; nothing when it is missing or unreadable (logged)."""
        if not database.is_file():
            return cls()
        try:
            db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT value FROM meta WHERE key = ?", (_BD_SEQ,)).fetchone()
                seen = db.execute("SELECT id, expires_at, seen_at FROM command_seen").fetchall()
            finally:
                db.close()
        except sqlite3.Error as err:
            log.error("%s: cannot read what a restore carries over: %s", database, err)
            return cls()
        return cls(
            _as_count(row[0] if row else 0), tuple((str(a), str(b), str(c)) for a, b, c in seen)
        )

    def merge(self, other: CarriedOver) -> CarriedOver:
        """The higher counter and both sets of ids."""
        return CarriedOver(max(self.bd_seq, other.bd_seq), self.seen + other.seen)

    def write(self, database: Path) -> None:
        """Raise the counter (never lower it) and add the ids, in one transaction."""
        db = sqlite3.connect(database)
        try:
            # A rollback journal, not a WAL: closed, the copy is one whole file to rename.
            db.execute("PRAGMA journal_mode=DELETE")
            with db:
                row = db.execute("SELECT value FROM meta WHERE key = ?", (_BD_SEQ,)).fetchone()
                bd_seq = max(self.bd_seq, _as_count(row[0] if row else 0))
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (_BD_SEQ, str(bd_seq)),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO command_seen (id, expires_at, seen_at) VALUES (?, ?, ?)",
                    self.seen,
                )
        finally:
            db.close()


def _as_count(value: object) -> int:
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0


def carry_across_restore(sources: Sequence[Path]) -> Callable[[Path], None]:
    """Read what `sources` hold that must survive; returns the writer for the restored copy."""
    carried = CarriedOver()
    for source in sources:
        carried = carried.merge(CarriedOver.read(source))

    def write(target: Path) -> None:
        try:
            carried.write(target)
        except sqlite3.Error as err:  # the transaction rolled back: the copy is the snapshot
            log.error("%s: could not carry the session count and seen ids over: %s", target, err)

    return write
