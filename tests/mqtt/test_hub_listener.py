"""The hub workers' listener trusts the hub CA only, the devices' listener the fleet CA only.

Against a real mosquitto set up as hub/mosquitto/mosquitto.conf is (tests/mqtt/tls_broker.py):
a device certificate never gets a session on the hub listener, whatever client id it
claims, so it cannot close a device's or a worker's session there; the hub's certificate
gets nothing on the device listener; and a hub worker with its own certificate serves
devices as before.
"""

from __future__ import annotations

import pytest
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.client import TlsFiles
from appliance.mqtt.payloads import HubState, SalesAck, decode, encode
from hub import ca
from hub.cli_serve import catalog_serving_hub
from hub.server import BrokerEndpoint
from tests.hub.test_ingest import batch
from tests.mqtt.tls_broker import (
    WAIT,
    Connector,
    Pki,
    Session,
    TlsBroker,
    accepted,
    attempt_connect,
    wait_logged,
)

VERIFY_FAILED = "certificate verify failed"


def _device(connect: Connector, identity: str) -> Session:
    """A device on the device listener, subscribed as topics.device_subscriptions() says."""
    device = connect(identity)
    for topic in topics.device_subscriptions(identity):
        assert device.subscribe(topic) == [1]
    return device


@pytest.mark.parametrize("claimed", ["kiosk-b", "hub:worker-1"])
def test_a_device_certificate_on_the_hub_listener_is_refused_and_closes_no_session(
    connect: Connector, tls_broker: TlsBroker, pki: Pki, claimed: str
) -> None:
    hub = connect.hub("worker-1")
    victim = _device(connect, "kiosk-b")
    intruder = pki.client("kiosk-a")
    # A device that reaches the hub listener (a misrouted network, a leaked port) and
    # claims the client id of a device or of a hub worker.
    seen = attempt_connect(
        tls_broker, intruder, intruder.ca_cert, tls_broker.hub_port, client_id=claimed
    )
    assert not accepted(seen)
    assert wait_logged(tls_broker, VERIFY_FAILED)
    # Both sessions are still the same connections: the hub reaches the device, the
    # device reaches the hub, and neither was disconnected.
    assert hub.publish(topics.command("kiosk-b"), b"{}") == 0
    victim.wait_for_topic(topics.command("kiosk-b"))
    assert victim.publish(topics.command_update("kiosk-b"), b"{}") == 0
    hub.wait_for_topic(topics.command_update("kiosk-b"))
    assert victim.seen.disconnects == []
    assert hub.seen.disconnects == []


def test_the_hub_certificate_is_refused_on_the_device_listener(
    connect: Connector, tls_broker: TlsBroker, pki: Pki
) -> None:
    victim = _device(connect, "kiosk-b")
    hub = pki.client(ca.HUB_IDENTITY)
    seen = attempt_connect(tls_broker, hub, hub.ca_cert, tls_broker.device_port)
    assert not accepted(seen)
    assert wait_logged(tls_broker, VERIFY_FAILED)
    assert victim.seen.disconnects == []


def test_a_hub_worker_with_its_hub_ca_certificate_serves_devices(
    connect: Connector, tls_broker: TlsBroker, pki: Pki, hub_db: Database
) -> None:
    cert = pki.client(ca.HUB_IDENTITY)
    # The worker verifies the broker with the fleet CA and shows the hub CA's certificate.
    endpoint = BrokerEndpoint(
        tls_broker.host, tls_broker.hub_port, TlsFiles(pki.ca_cert, cert.cert, cert.key)
    )
    server = catalog_serving_hub(hub_db, endpoint, "w1")
    server.start(timeout=WAIT)
    try:
        assert server.client_id == "hub:w1"
        device = _device(connect, "kiosk-a")
        device.wait_for_topic(topics.HUB_STATE)
        [state] = [m for m in device.seen.messages if m.topic == topics.HUB_STATE]
        assert decode(state.payload, HubState) == HubState(online=True, hub_id="w1")
        assert device.publish(topics.sales_up("kiosk-a"), encode(batch("kiosk-a", [1, 2]))) == 0
        device.wait_for_topic(topics.sales_ack("kiosk-a"))
        [ack] = [m for m in device.seen.messages if m.topic == topics.sales_ack("kiosk-a")]
        assert decode(ack.payload, SalesAck).upto_seq == 2
    finally:
        server.stop()
