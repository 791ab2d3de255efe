"""What went wrong with the hub's database, named, and said once per outage.

A worker that cannot store a batch publishes no acknowledgement, and the device keeps
the sales and resends them: a failed write loses nothing. What the operator needs is one
clear line when the database goes bad (full, unreachable, an I/O error) and one when it is
back, not a traceback for every message the devices send meanwhile.
"""

from __future__ import annotations

import enum
import logging
import sqlite3
from collections.abc import Iterator

from peewee import Database, PeeweeException

from appliance.core.clock import Clock

log = logging.getLogger(__name__)

# Primary result codes (the low byte of an extended code) of sqlite3.Error.sqlite_errorcode.
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14

# SQLSTATEs of PostgreSQL (Appendix A of its manual).
_PG_DISK_FULL = "53100"
_PG_IO_ERROR = "58030"
_PG_CONNECTION_CLASS = "08"
# Shut down by an admin, shut down by a crash, not accepting connections (starting, stopping).
_PG_SERVER_GOING = frozenset({"57P01", "57P02", "57P03"})


class StorageFault(enum.Enum):
    """A database fault the hub names to the operator."""

    FULL = "database full"
    UNREACHABLE = "database unreachable"
    IO_ERROR = "database I/O error"


def storage_fault(err: BaseException) -> StorageFault | None:
    """The fault behind `err` or anything it was raised from or during; None for the rest."""
    return next((f for f in map(_named, _causes(err)) if f is not None), None)


def driver_message(err: BaseException) -> str:
    """The first line of the database driver's own message behind `err`."""
    named = next((c for c in _causes(err) if _named(c) is not None), err)
    return _first_line(named)


def reset_connection(db: Database) -> None:
    """Drop the calling thread's connection, dead or not, so the next query opens a new one.

    peewee cannot tell that the server went away: it keeps handing out the dead
    connection ("connection already closed") until it is closed.
    """
    try:
        db.close()  # resets peewee's per-thread state even when closing the socket fails
    except PeeweeException as err:
        log.debug("closing the broken database connection: %s", err)


class StorageWatch:
    """One worker's view of its database: logs the first failure and the recovery, once each.

    `failed` and `succeeded` are called by the worker thread only; `fault` is read by any.
    """

    def __init__(self, worker: str, clock: Clock) -> None:
        self._worker = worker
        self._clock = clock
        self._fault: StorageFault | None = None
        self._since = 0.0
        self._failed = 0  # messages that failed during the current fault

    @property
    def fault(self) -> StorageFault | None:
        """The fault seen by the last database access (None: it worked)."""
        return self._fault

    def failed(self, fault: StorageFault, err: BaseException) -> None:
        """A message could not be stored because of `fault`."""
        self._failed += 1
        if fault is self._fault:
            log.debug("hub worker %s: still %s: %s", self._worker, fault.value, _first_line(err))
            return
        if self._fault is None:
            self._since = self._clock.monotonic()
        self._fault = fault
        log.error(
            "hub worker %s: %s (%s); sales are neither stored nor acknowledged until it "
            "is fixed, devices keep them and resend",
            self._worker,
            fault.value,
            driver_message(err),
        )

    def succeeded(self) -> bool:
        """A message was handled; True when that ends a fault."""
        if self._fault is None:
            return False
        fault, self._fault = self._fault, None
        log.warning(
            "hub worker %s: the database works again after %.0f s of %s (%d message(s) "
            "failed; devices resend their sales)",
            self._worker,
            self._clock.monotonic() - self._since,
            fault.value,
            self._failed,
        )
        self._failed = 0
        return True


def _causes(err: BaseException) -> Iterator[BaseException]:
    """`err`, the driver error peewee wraps in it, and what each was raised from or during."""
    pending, seen = [err], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # peewee re-raises a driver error as its own class with the original as args[0].
        pending.extend(a for a in current.args if isinstance(a, BaseException))
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _named(err: BaseException) -> StorageFault | None:
    """The fault `err` itself names, without looking at what it came from."""
    return _sqlite_fault(err) or _postgres_fault(err)


def _sqlite_fault(err: BaseException) -> StorageFault | None:
    if not isinstance(err, sqlite3.Error):
        return None
    code = getattr(err, "sqlite_errorcode", None)
    if code is None:
        return None
    primary = code & 0xFF
    if primary == _SQLITE_FULL:
        return StorageFault.FULL
    # A file system remounted read-only after disk errors refuses writes as READONLY.
    if primary in (_SQLITE_IOERR, _SQLITE_READONLY):
        return StorageFault.IO_ERROR
    if primary == _SQLITE_CANTOPEN:
        return StorageFault.UNREACHABLE
    return None


def _postgres_fault(err: BaseException) -> StorageFault | None:
    # psycopg2 is optional (PostgreSQL only): recognise its errors without importing it.
    if not type(err).__module__.startswith(("psycopg2", "psycopg")):
        return None
    state = getattr(err, "pgcode", None) or getattr(err, "sqlstate", None)
    if state == _PG_DISK_FULL:
        return StorageFault.FULL
    if state == _PG_IO_ERROR:
        return StorageFault.IO_ERROR
    if state is not None and (state.startswith(_PG_CONNECTION_CLASS) or state in _PG_SERVER_GOING):
        return StorageFault.UNREACHABLE
    # No SQLSTATE: the client library itself lost the server (refused, closed, reset).
    if state is None and type(err).__name__ in ("OperationalError", "InterfaceError"):
        return StorageFault.UNREACHABLE
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
