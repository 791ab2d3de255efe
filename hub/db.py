"""Opening the hub database from a URL: embedded SQLite by default, PostgreSQL at scale.

The hub's models carry no database (see hub/models.py): every query is executed against
the `Database` returned here, passed explicitly, so one process can hold several hub
databases (tests run two workers side by side) without a global binding.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from peewee import Database, ImproperlyConfigured, OperationalError, SqliteDatabase

from appliance.errors import StoreError

log = logging.getLogger(__name__)

DEFAULT_DB_URL = "sqlite:///hub.db"
DB_URL_ENVVAR = "APPLIANCE_HUB_DB"

# Sales are acknowledged to devices right after the commit, and a device then deletes its
# copy: the commit must survive a power cut (WAL + synchronous=FULL), or a sale is lost.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    # Several `serve` workers may share one file; a writer waits for the lock, not fails.
    "busy_timeout": 30_000,
}

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "postgres+pool", "postgresql+pool"})


class HubDatabaseError(StoreError):
    """The hub database URL is unusable, or the database cannot be opened."""


def open_hub_database(url: str, *, create: bool = True) -> Database:
    """Open the hub database at `url` (sqlite:///PATH or postgresql://...); connected.

    With `create=False` a missing SQLite file is an error instead of a new empty database
    (read-only commands should not invent a database where the data was expected).
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return _open_sqlite(url, create=create)
    if scheme in POSTGRES_SCHEMES:
        return _open_postgres(url)
    raise HubDatabaseError(
        f"unsupported database URL {redacted(url)!r}: use sqlite:///PATH or postgresql://..."
    )


def sqlite_path(url: str) -> str:
    """The file of a sqlite:/// URL (sqlite:///rel.db is relative, sqlite:////abs.db absolute)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise HubDatabaseError(f"{url!r} is not a sqlite:///PATH URL")
    path = parts.path[1:]
    if not path:
        raise HubDatabaseError(f"{url!r} names no file")
    return path


def redacted(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def is_sqlite(db: Database) -> bool:
    """True for the embedded SQLite database (it locks the whole file per write)."""
    return isinstance(db, SqliteDatabase)


def _open_sqlite(url: str, *, create: bool) -> Database:
    path = sqlite_path(url)
    if path != ":memory:":
        location = Path(path)
        if not location.exists():
            if not create:
                raise HubDatabaseError(f"{location}: no hub database (run `appliance-hub serve`)")
            location.parent.mkdir(parents=True, exist_ok=True)
    # BEGIN IMMEDIATE on every transaction: a worker takes the write lock up front, so two
    # workers never deadlock upgrading a read lock; the second waits (busy_timeout) instead.
    db = SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE", autoconnect=True)
    try:
        db.connect(reuse_if_open=True)
    except OperationalError as err:
        raise HubDatabaseError(f"cannot open {path}: {err}") from err
    return db


def _open_postgres(url: str) -> Database:
    from playhouse.db_url import connect

    try:
        db: Database = connect(url, unquote_password=True, unquote_user=True, autoconnect=True)
        db.connect(reuse_if_open=True)
    except ImproperlyConfigured as err:
        raise HubDatabaseError(
            f"PostgreSQL needs a driver: pip install psycopg2-binary ({err})"
        ) from err
    except OperationalError as err:
        raise HubDatabaseError(f"cannot connect to {redacted(url)}: {err}") from err
    except ValueError as err:
        raise HubDatabaseError(str(err).replace(url, redacted(url))) from err
    return db
