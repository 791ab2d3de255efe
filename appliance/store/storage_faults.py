"""Telling a failing disk from any other database error, and saying which failure it is."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator

from appliance.core.storage import StorageState
from appliance.errors import (
    StorageFullError,
    StorageIOError,
    StorageReadOnlyError,
    StoreError,
)

# SQLite's primary result codes (the low byte of an extended code such as
# SQLITE_IOERR_WRITE = 778): https://www.sqlite.org/rescode.html
_SQLITE_FAULTS: dict[int, StorageState] = {
    8: "read_only",  # SQLITE_READONLY
    10: "io_error",  # SQLITE_IOERR
    11: "io_error",  # SQLITE_CORRUPT: what torn writes on a failing card look like
    13: "full",  # SQLITE_FULL (also the database's max_page_count)
    26: "io_error",  # SQLITE_NOTADB
}
_OS_FAULTS: dict[int, StorageState] = {
    errno.ENOSPC: "full",
    errno.EDQUOT: "full",
    errno.EROFS: "read_only",
    errno.EIO: "io_error",
}
_ERRORS: dict[StorageState, type[StoreError]] = {
    "full": StorageFullError,
    "read_only": StorageReadOnlyError,
    "io_error": StorageIOError,
}
_WORDS: dict[StorageState, str] = {
    "full": "storage full",
    "read_only": "storage read-only",
    "io_error": "storage I/O error",
}


def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err`, then what caused it, then what it happened during, without loops."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def storage_fault(err: BaseException) -> tuple[StorageState, BaseException] | None:
    """Which disk failure `err` (or an error behind it) is, and that error; None if no fault.

    SQLite rolls a transaction back by itself on SQLITE_FULL and I/O errors, so the error
    that surfaces is often "cannot rollback - no transaction is active": the real one is
    further down the chain.
    """
    for link in _chain(err):
        if isinstance(link, sqlite3.Error):
            code = getattr(link, "sqlite_errorcode", None)
            if code is not None and (fault := _SQLITE_FAULTS.get(code & 0xFF)):
                return fault, link
        elif isinstance(link, OSError) and (fault := _OS_FAULTS.get(link.errno or 0)):
            return fault, link
    return None


def store_error(err: BaseException, doing: str) -> StoreError:
    """The StoreError to raise for `err` while `doing` (e.g. "the sale could not be stored").

    A disk failure becomes StorageFullError, StorageReadOnlyError or StorageIOError with its
    own words; anything else keeps SQLite's message.
    """
    found = storage_fault(err)
    if found is None:
        return StoreError(f"{doing}: {err}")
    fault, cause = found
    return _ERRORS[fault](f"{_WORDS[fault]}: {doing} ({cause})")
