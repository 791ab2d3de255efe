"""Opening the hub database from a URL: embedded SQLite by default, PostgreSQL at scale.

The hub's models carry no database (see hub/models.py): every query is executed against
the `Database` returned here, passed explicitly, so one process can hold several hub
databases (tests run two workers side by side) without a global binding.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from peewee import (
    Database,
    ImproperlyConfigured,
    OperationalError,
    PeeweeException,
    PostgresqlDatabase,
    SqliteDatabase,
)
from playhouse.pool import PooledPostgresqlDatabase

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


def _drop_if_lost(db: Any) -> None:
    # A psycopg2 connection the server dropped (a restart, a network cut) stays in peewee's
    # per-thread state, so every later query of that thread fails ("connection already
    # closed"). Outside a transaction nothing is lost by opening a new one instead.
    conn = db._state.conn
    if conn is None or not getattr(conn, "closed", 0) or db.in_transaction():
        return
    log.info("the database connection was lost; opening a new one")
    try:
        db.close()  # resets the thread's state even when closing the socket fails
    except PeeweeException as err:
        log.debug("closing the lost database connection: %s", err)


class HubPostgresqlDatabase(PostgresqlDatabase):
    """PostgreSQL whose threads replace a connection the server dropped before using it."""

    def cursor(self, named_cursor: Any = None) -> Any:
        """A cursor on a live connection (a dropped one is replaced outside transactions)."""
        _drop_if_lost(self)
        return super().cursor(named_cursor)  # type: ignore[no-untyped-call]


class HubPooledPostgresqlDatabase(PooledPostgresqlDatabase):  # type: ignore[misc]
    """The pooled PostgreSQL database, replacing dropped connections like the plain one."""

    def cursor(self, named_cursor: Any = None) -> Any:
        """A cursor on a live connection (a dropped one is replaced outside transactions)."""
        _drop_if_lost(self)
        return super().cursor(named_cursor)


_POSTGRES_CLASSES: dict[str, type[Database]] = {
    "postgres": HubPostgresqlDatabase,
    "postgresql": HubPostgresqlDatabase,
    "postgres+pool": HubPooledPostgresqlDatabase,
    "postgresql+pool": HubPooledPostgresqlDatabase,
}


def _open_postgres(url: str) -> Database:
    from playhouse.db_url import parse

    try:
        params = parse(url, unquote_password=True, unquote_user=True)
        if not params.get("database"):
            raise ValueError(f"{url!r} names no database: postgresql://host/dbname")
        db = _POSTGRES_CLASSES[urlsplit(url).scheme](**params, autoconnect=True)
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
