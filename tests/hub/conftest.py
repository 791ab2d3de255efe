"""Fixtures for hub tests: a real mosquitto broker per test, a PostgreSQL cluster per module,
a SQLite hub database and the worker `appliance-hub serve` runs on it (tests/hub/serving.py),
and a raw client playing kiosk-1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peewee import Database

from appliance.mqtt import topics
from hub.db import open_hub_database
from hub.migrations import migrate
from tests.broker import MosquittoBroker
from tests.hub.serving import db_path, hub_db, serving_hub  # noqa: F401 (fixtures)
from tests.hub.test_server import DeviceClient
from tests.postgres import PostgresCluster, running_postgres


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh mosquitto on a free loopback port, stopped after the test."""
    running = MosquittoBroker(tmp_path / "broker")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def device(broker: MosquittoBroker) -> Iterator[DeviceClient]:
    """A raw paho client playing kiosk-1, subscribed to its sales acks."""
    client = DeviceClient(broker, "kiosk-1", [topics.sales_ack("kiosk-1")])
    yield client
    client.close()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the module."""
    with running_postgres(tmp_path_factory.mktemp("pg")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def postgres_hub(postgres: PostgresCluster) -> Iterator[Database]:
    """One migrated PostgreSQL hub database for the module (each test empties what it uses)."""
    db = open_hub_database(postgres.new_database())
    migrate(db)
    yield db
    db.close()
