"""Fixtures for hub-link tests: a real mosquitto broker per test, the same over mTLS with the
shipped ACL (tests/mqtt/tls_broker.py), the appliance's database and hub link, and the real
hub worker on a SQLite hub database (tests/hub/serving.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.mqtt.link import PahoHubLink
from appliance.store.hub_session import SessionStore
from tests.broker import MosquittoBroker
from tests.hub.serving import db_path, hub_db, serving_hub  # noqa: F401 (fixtures)
from tests.mqtt.fake_hub import DeviceStore
from tests.mqtt.tls_broker import Connector, Pki, TlsBroker
from tests.store.crash_writer import DEVICE_ID


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh mosquitto on a free loopback port, stopped after the test."""
    running = MosquittoBroker(tmp_path / "broker")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Fleet and hub CAs with a server certificate for the module's brokers."""
    return Pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[TlsBroker]:
    """A fresh mosquitto with the shipped ACL and the two mTLS listeners."""
    broker = TlsBroker(tmp_path / "broker", pki)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def connect(tls_broker: TlsBroker, pki: Pki) -> Iterator[Connector]:
    """Open TLS sessions to the broker; all closed after the test."""
    connector = Connector(tls_broker, pki)
    yield connector
    connector.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DeviceStore]:
    """The appliance's database (the session counter lives in its meta table)."""
    device = DeviceStore(tmp_path / "data" / "appliance.db")
    yield device
    device.close()


@pytest.fixture
def link(broker: MosquittoBroker, store: DeviceStore) -> Iterator[PahoHubLink]:
    """The appliance's hub link on the store's session counter (opened by the test)."""
    hub_link = PahoHubLink(
        DEVICE_ID, broker.host, broker.port, session_store=SessionStore(store.db)
    )
    yield hub_link
    hub_link.close()
