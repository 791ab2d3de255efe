"""The hub's catalog on PostgreSQL, the hub's database at scale: the same scenarios as on
SQLite (tests/hub/test_catalog.py), against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peewee import Database

from hub.catalog import HubCatalog, create_catalog_tables
from hub.db import open_hub_database
from hub.migrations import migrate as migrate_hub
from tests.hub.test_catalog import STORE, make_versions_at_once
from tests.hub.test_catalog import (
    test_a_csv_import_computes_new_changed_and_deleted_as_a_delta as import_makes_a_delta,
)
from tests.hub.test_catalog import (
    test_a_published_level_goes_in_deltas_and_snapshots_until_a_new_count as levels_in_deltas,
)
from tests.postgres import PostgresCluster


@pytest.fixture
def pg_db(postgres: PostgresCluster) -> Iterator[Database]:
    """A fresh, migrated PostgreSQL hub database."""
    db = open_hub_database(postgres.new_database())
    migrate_hub(db)
    create_catalog_tables(db)
    yield db
    db.close()


@pytest.fixture
def pg_catalog(pg_db: Database) -> HubCatalog:
    """A store's catalog in a fresh PostgreSQL hub database."""
    return HubCatalog(pg_db, STORE)


def test_a_csv_import_computes_its_delta_on_postgresql(pg_catalog: HubCatalog) -> None:
    import_makes_a_delta(pg_catalog)


def test_published_levels_in_deltas_and_snapshots_on_postgresql(pg_catalog: HubCatalog) -> None:
    levels_in_deltas(pg_catalog)


def test_workers_making_versions_at_once_never_collide_on_postgresql(pg_db: Database) -> None:
    # Without the store's advisory lock two transactions read the same newest version and
    # the second insert of it fails (READ COMMITTED sees no row the other has not committed).
    make_versions_at_once(pg_db)
