"""Versioned schema migrations of the hub database, on SQLite and PostgreSQL alike.

The version lives in a one-row table (`hub_schema`) rather than SQLite's user_version so
the same code tracks it on PostgreSQL. Several `serve` workers may start at once: each
migration runs in one transaction that holds the database's write lock (SQLite: BEGIN
IMMEDIATE; PostgreSQL: an advisory lock), and the version is re-read under that lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from peewee import Database, SchemaManager

from appliance.errors import SchemaTooNewError, StoreError
from hub.api.access import ApiToken
from hub.card_ledger import create_card_tables
from hub.catalog_records import migrate_catalog_records
from hub.catalog_rows import add_bag_columns
from hub.dashboard.models import migrate_dashboard
from hub.db import is_sqlite, open_hub_database, redacted
from hub.help_board import create_screen_table
from hub.help_calls import create_help_tables
from hub.models import JOURNAL_MODELS, MODELS, PROTOCOL_MODELS
from hub.receipts.models import create_receipt_tables
from hub.releases.models import create_release_tables
from hub.webhooks.models import create_webhook_tables

log = logging.getLogger(__name__)

# Any constant unique to this application: serialises migrations across hub workers.
_PG_MIGRATION_LOCK = 0x4855_4201


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the hub schema, applied in one transaction."""

    version: int
    description: str
    apply: Callable[[Database], None]


def _create_tables(db: Database) -> None:
    for model in MODELS:
        SchemaManager(model, database=db).create_all(safe=True)


def _create_catalog(db: Database) -> None:
    from hub.catalog import create_catalog_tables

    create_catalog_tables(db)


def _add_clock_verified(db: Database) -> None:
    # Version 1 creates the tables from today's models, so a new database has the column.
    if "clock_verified" not in {column.name for column in db.get_columns("sale")}:
        db.execute_sql("ALTER TABLE sale ADD COLUMN clock_verified BOOLEAN NOT NULL DEFAULT TRUE")


def _create_journal(db: Database) -> None:
    for model in JOURNAL_MODELS:
        SchemaManager(model, database=db).create_all(safe=True)


def _protocol_tables(db: Database) -> None:
    # Version 1 creates Device from today's model, so a new database has the columns.
    present = {column.name for column in db.get_columns("device")}
    for column in ("config_desired", "config_reported"):
        if column not in present:
            db.execute_sql(f"ALTER TABLE device ADD COLUMN {column} TEXT")
    if "rejected" not in {column.name for column in db.get_columns("device_progress")}:
        db.execute_sql("ALTER TABLE device_progress ADD COLUMN rejected BIGINT NOT NULL DEFAULT 0")
    for model in PROTOCOL_MODELS:
        SchemaManager(model, database=db).create_all(safe=True)


def _sale_store_and_tokens(db: Database) -> None:
    # Version 1 creates Sale from today's model, so a new database has the column.
    if "store" not in {column.name for column in db.get_columns("sale")}:
        db.execute_sql("ALTER TABLE sale ADD COLUMN store VARCHAR(64)")
        # Older sales get their device's store as it is now: the best the hub knows.
        db.execute_sql(
            "UPDATE sale SET store = (SELECT store FROM device_store"
            " WHERE device_store.device = sale.device)"
        )
    db.execute_sql("CREATE INDEX IF NOT EXISTS sale_store_created_at ON sale (store, created_at)")
    SchemaManager(ApiToken, database=db).create_all(safe=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "devices, sales and per-device ingest progress", _create_tables),
    Migration(2, "versioned store catalogs and device-to-store assignment", _create_catalog),
    Migration(3, "sales stamped before the device's clock was verified", _add_clock_verified),
    Migration(
        4,
        "fiscal journals, their chain state, and the reports, drawer log and shifts they hold",
        _create_journal,
    ),
    Migration(
        5,
        "rejected sales, command jobs, device logs and config, worker counters, stock levels",
        _protocol_tables,
    ),
    Migration(
        6, "the store of each sale, and the integration API's access tokens", _sale_store_and_tokens
    ),
    Migration(
        7, "full product records: descriptions, pictures, stock movements", migrate_catalog_records
    ),
    Migration(8, "webhook endpoints and their durable delivery queue", create_webhook_tables),
    Migration(
        9,
        "dashboard admins, sessions and failed logins, commands held for offline devices,"
        " telemetry history",
        migrate_dashboard,
    ),
    Migration(
        10,
        "releases, rollouts and their targets, and each device's update state",
        create_release_tables,
    ),
    Migration(
        11, "e-receipt tokens: a sale found by the secret of its QR link", create_receipt_tables
    ),
    Migration(12, "calls for help from kiosks, the latest state of each", create_help_tables),
    Migration(13, "each product's bagging-area weight and tolerance", add_bag_columns),
    Migration(14, "the screen each device runs, for remote approval", create_screen_table),
    Migration(
        15,
        "stored-value cards at the hub, their entries, loyalty rules and awards",
        create_card_tables,
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def schema_version(db: Database) -> int:
    """The version the hub database is at (0 when it has no hub tables)."""
    if not db.table_exists("hub_schema"):
        return 0
    row = db.execute_sql("SELECT version FROM hub_schema").fetchone()
    return int(row[0]) if row else 0


def check_not_newer(db: Database) -> int:
    """Refuse a database written by a newer hub; returns its version."""
    found = schema_version(db)
    if found > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the hub database is at schema version {found} but this hub knows up to "
            f"{SCHEMA_VERSION}: run the newer hub; the data was not touched"
        )
    return found


def migrate(db: Database) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns what ran."""
    applied: list[Migration] = []
    if check_not_newer(db) == SCHEMA_VERSION:
        return applied
    for migration in MIGRATIONS:
        with db.atomic():
            if not is_sqlite(db):
                db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_MIGRATION_LOCK,))
            db.execute_sql("CREATE TABLE IF NOT EXISTS hub_schema (version INTEGER NOT NULL)")
            # Re-read under the lock: another worker may have migrated meanwhile.
            if check_not_newer(db) >= migration.version:
                continue
            migration.apply(db)
            db.execute_sql("DELETE FROM hub_schema")
            db.execute_sql(
                f"INSERT INTO hub_schema (version) VALUES ({db.param})", (migration.version,)
            )
        applied.append(migration)
        log.info(
            "hub database migrated to version %d: %s", migration.version, migration.description
        )
    return applied


def open_existing(url: str) -> Database:
    """Open a hub database that must already exist at this hub's schema (read commands).

    StoreError when there is none, it has no hub tables, or a newer hub wrote it.
    """
    db = open_hub_database(url, create=False)
    try:
        if check_not_newer(db) == 0:
            raise StoreError(f"{redacted(url)} has no hub tables (run `appliance-hub serve`)")
    except BaseException:
        db.close()
        raise
    return db
