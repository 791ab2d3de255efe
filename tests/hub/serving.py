"""The hub worker `appliance-hub serve` runs, on a migrated SQLite hub database, for tests.

tests/hub/conftest.py and tests/mqtt/conftest.py offer the fixtures here to their tests;
`broker` is the directory's own mosquitto.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peewee import Database

from hub.cli_serve import catalog_serving_hub
from hub.server import BrokerEndpoint, HubServer
from tests.broker import MosquittoBroker
from tests.hub.test_ingest import sqlite_hub

START_TIMEOUT = 10.0  # seconds; a bound on waiting for the worker, never asserted


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's SQLite hub database lives."""
    return tmp_path / "hub.db"


@pytest.fixture
def hub_db(db_path: Path) -> Iterator[Database]:
    """A migrated SQLite hub database at db_path."""
    db = sqlite_hub(db_path)
    yield db
    db.close()


def start_serving_hub(broker: MosquittoBroker, db: Database) -> HubServer:
    """The worker `appliance-hub serve` runs, started on the test broker."""
    server = catalog_serving_hub(db, BrokerEndpoint(broker.host, broker.port), "w1")
    server.start(timeout=START_TIMEOUT)
    return server


@pytest.fixture
def serving_hub(broker: MosquittoBroker, hub_db: Database) -> Iterator[HubServer]:
    """The worker `appliance-hub serve` runs, on hub_db; stopped after the test."""
    server = start_serving_hub(broker, hub_db)
    yield server
    server.stop()
