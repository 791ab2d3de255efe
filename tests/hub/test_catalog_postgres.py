"""The hub's catalog on PostgreSQL, the hub's database at scale: the same scenarios as on
SQLite (tests/hub/test_catalog.py), against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub.catalog import HubCatalog, create_catalog_tables
from hub.db import open_hub_database
from hub.migrations import migrate as migrate_hub
from tests.hub.test_catalog import STORE
from tests.hub.test_catalog import (
    test_a_csv_import_computes_new_changed_and_deleted_as_a_delta as import_makes_a_delta,
)
from tests.postgres import PostgresCluster


@pytest.fixture
def pg_catalog(postgres: PostgresCluster) -> Iterator[HubCatalog]:
    """A store's catalog in a fresh, migrated PostgreSQL hub database."""
    db = open_hub_database(postgres.new_database())
    migrate_hub(db)
    create_catalog_tables(db)
    yield HubCatalog(db, STORE)
    db.close()


def test_a_csv_import_computes_its_delta_on_postgresql(pg_catalog: HubCatalog) -> None:
    import_makes_a_delta(pg_catalog)
