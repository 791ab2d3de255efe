"""Telling a failing disk from any other database error, and saying which failure it is."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
MOUNTINFO = Path("/proc/self/mountinfo")
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


def store_error(err: BaseException, doing: str, folder: Path | None = None) -> StoreError:
    """The StoreError to raise for `err` while `doing` (e.g. "the sale could not be stored").

    A disk failure becomes StorageFullError, StorageReadOnlyError or StorageIOError with its
    own words; anything else keeps SQLite's message. With the database's `folder`, an I/O
    error on a partition the kernel remounted read-only is called what it is.
    """
    found = storage_fault(err)
    if found is None:
        return StoreError(f"{doing}: {err}")
    fault, cause = found
    if fault == "io_error" and folder is not None and mount_read_only(folder):
        fault = "read_only"
    return _ERRORS[fault](f"{_WORDS[fault]}: {doing} ({cause})")


def database_folder(db: Any) -> Path | None:
    """The folder of a peewee database's file; None in memory."""
    name = str(getattr(db, "database", "") or "")
    return None if not name or name == ":memory:" else Path(name).parent


def mount_read_only(folder: Path, mountinfo: Path = MOUNTINFO) -> bool:
    """True when the file system holding `folder` is mounted, or was remounted, read-only.

    ext4's errors=remount-ro on a recent kernel marks the super block `emergency_ro` without
    changing the flags statvfs reports, so the mount table is read as well.
    """
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return False
    target = os.path.realpath(folder)
    best: tuple[int, bool] = (-1, False)
    for line in lines:
        fields = line.split(" ")
        if " - " not in line or len(fields) < 6:
            continue
        point = fields[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if not inside or len(point) <= best[0]:
            continue
        options = set(fields[5].split(",")) | set(line.split(" - ", 1)[1].split(" ")[-1].split(","))
        read_only = bool({"ro", "emergency_ro"} & options)
        best = (len(point), read_only)
    return best[1]
