"""What the API's lists share: opaque cursors, the `limit` parameter, and RFC 3339 times.

A cursor names the last row a page held by the list's own key (a sale's row id, a
device's id), never by a time: rows that arrive while a client pages never shift the
pages it has yet to read. It is base64 so clients treat it as opaque, and tagged with
its list so a cursor of one list is refused by another.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

from litestar.exceptions import ValidationException
from litestar.params import QueryParameter
from peewee import Database, Model

from hub.db import is_sqlite

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_ID = 2**63 - 1  # the largest row id either database holds (a 64-bit signed integer)

Limit = Annotated[
    int,
    QueryParameter(
        ge=1,
        le=MAX_LIMIT,
        description=f"Items per page, 1 to {MAX_LIMIT}.",
    ),
]
Cursor = Annotated[
    str | None,
    QueryParameter(description="`next_cursor` of the previous page; leave out for the first page."),
]


def invalid(field: str, message: str, source: str = "query") -> ValidationException:
    """A 422 naming `field`, as a handler raises it for input the types cannot check."""
    return ValidationException(
        detail=f"{field}: {message}",
        extra=[{"key": field, "message": message, "source": source}],
    )


def encode_cursor(kind: str, last: int | str) -> str:
    """The cursor after `last` in the list `kind`."""
    return base64.urlsafe_b64encode(f"{kind}:{last}".encode()).decode("ascii").rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    """The key a cursor of the list `kind` names (None: from the start); 422 when it is not one."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    tag, sep, key = text.partition(":")
    if tag != kind or not sep or not key:
        raise invalid("cursor", "not a cursor of this list: pass a page's next_cursor as it is")
    return key


def decode_id_cursor(kind: str, cursor: str | None) -> int:
    """The row id a cursor names (0: from the start)."""
    key = decode_cursor(kind, cursor)
    if key is None:
        return 0
    # isdecimal() alone lets other scripts' digits through; int() of a 30-digit id would
    # reach the database and overflow its integer.
    if not (key.isascii() and key.isdecimal()) or int(key) > MAX_ID:
        raise invalid("cursor", "not a cursor of this list: pass a page's next_cursor as it is")
    return int(key)


@contextmanager
def settled_ids(db: Database, table: type[Model]) -> Iterator[None]:
    """Read a page of `table` by row id in here: every id below those it returns is settled.

    On PostgreSQL an id is taken at INSERT, not at commit: a page read while a lower id's
    transaction is still open would pass that row, and a cursor after it never finds it.
    A SHARE lock waits for every transaction that wrote to the table to end and holds new
    writes off only while the page is read. SQLite has one writer at a time: nothing to do.
    """
    if is_sqlite(db):
        yield
        return
    with db.atomic():
        db.execute_sql(f'LOCK TABLE "{table._meta.table_name}" IN SHARE MODE')
        yield


def utc_param(field: str, value: datetime | None) -> datetime | None:
    """A time parameter as the naive UTC the hub stores; 422 when it has no UTC offset."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise invalid(field, "an RFC 3339 time needs its offset, e.g. 2024-05-01T00:00:00Z")
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError as err:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise invalid(field, "out of the range of times, once in UTC") from err


def rfc3339(value: datetime | str | None) -> str | None:
    """A stored naive UTC moment (SQLite may hand back text) as RFC 3339 with `Z`."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "Z"
