"""`appliance db migrate` and `appliance db check`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.settings import Settings
from appliance.store.migrations import SCHEMA_VERSION
from tests.cli.conftest import Cli, file_digest, make_newer_schema, opened

PAGE_SIZE = 4096


def _user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])
    finally:
        connection.close()


def test_migrate_a_fresh_path_then_again(appliance: Cli, db_path: Path) -> None:
    """The first run creates the schema; the second one has nothing to do and says so."""
    first = appliance("db", "migrate")

    assert first.exit_code == 0, first.output
    assert f"migrated from version 0 to {SCHEMA_VERSION}" in first.stdout
    assert _user_version(db_path) == SCHEMA_VERSION

    again = appliance("db", "migrate")

    assert again.exit_code == 0, again.output
    assert "already up to date" in again.stdout
    assert "migrated" not in again.stdout
    assert _user_version(db_path) == SCHEMA_VERSION


def test_check_a_healthy_database(appliance: Cli, db_path: Path) -> None:
    """A migrated database passes the check."""
    assert appliance("db", "migrate").exit_code == 0

    result = appliance("db", "check")

    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout
    assert str(db_path) in result.stdout


def test_check_without_a_database_creates_none(appliance: Cli, db_path: Path) -> None:
    """Nothing to check: exit 1, and no empty file is left behind."""
    result = appliance("db", "check")

    assert result.exit_code == 1
    assert "no database" in result.output
    assert not db_path.exists()


def test_check_finds_a_damaged_file(appliance: Cli, settings: Settings, db_path: Path) -> None:
    """Pages overwritten in the middle of the file: exit 1 with a message, no traceback."""
    with opened(settings) as app:
        app.catalog.upsert(
            (Product(f"SKU-{n:05d}", f"Product {n} " * 4, Money(n, "EUR"), "standard"), n)
            for n in range(3000)
        )
    assert not db_path.with_name(db_path.name + "-wal").exists()  # all in the main file
    size = db_path.stat().st_size
    assert size > 20 * PAGE_SIZE
    middle = (size // PAGE_SIZE // 2) * PAGE_SIZE
    with db_path.open("r+b") as handle:
        handle.seek(middle)
        handle.write(bytes(range(256)) * (3 * PAGE_SIZE // 256))

    result = appliance("db", "check")  # an uncaught exception would fail the test here

    assert result.exit_code == 1
    assert str(db_path) in result.stderr


def test_migrate_refuses_a_newer_schema(appliance: Cli, db_path: Path) -> None:
    """Written by newer software: exit 1, a clear message, the file byte for byte as it was."""
    make_newer_schema(db_path)
    before = file_digest(db_path)

    result = appliance("db", "migrate")

    assert result.exit_code == 1
    assert "schema version 99" in result.stderr
    assert "newer" in result.stderr
    assert file_digest(db_path) == before
    assert _user_version(db_path) == 99
    assert not (db_path.parent / "backups").exists()


def test_check_reports_the_schema_version(appliance: Cli) -> None:
    """The ok line says which schema version the file is at."""
    appliance("db", "migrate")

    assert f"schema version {SCHEMA_VERSION}" in appliance("db", "check").stdout
