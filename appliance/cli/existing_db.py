"""Opening the configured appliance's database for a command that reads what is there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peewee import SqliteDatabase

from appliance.errors import StoreError
from appliance.settings import Settings
from appliance.store.database import open_database
from appliance.store.migrations import check_not_newer


@contextmanager
def existing_database(settings: Settings) -> Iterator[SqliteDatabase]:
    """The database as it is (never created, never migrated), closed afterwards.

    StoreError when there is none: opening would create an empty file where the data was
    expected, and a report of an empty store would look like a store that sold nothing.
    """
    path = Path(settings.database.path)
    if not path.exists():
        raise StoreError(f"{path}: no database (run `appliance db migrate` first)")
    database = open_database(path)
    try:
        if check_not_newer(database) == 0:
            raise StoreError(f"{path}: the database has no tables (run `appliance db migrate`)")
        yield database
    finally:
        database.close()
