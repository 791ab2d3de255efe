"""The shipped broker ACL and mTLS setup, proved against a real mosquitto over TLS on loopback.

Device identity is the CN of its certificate (hub/ca.py); hub/mosquitto/acl grants each
device its own subtree only. Where nothing may arrive, a test waits for a later
"barrier" message the same subscriber is allowed to get instead of sleeping: the broker
delivers to one subscriber in order, so a forbidden message that got through would show
up before the barrier.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from appliance.mqtt import topics
from hub import ca
from tests.broker import free_port, mosquitto_binary
from tests.mqtt.tls_broker import (
    SHIPPED_ACL,
    SHIPPED_CONF,
    ClientCert,
    Pki,
    Recorder,
    TlsBroker,
    tls_client,
)

NOT_AUTHORIZED = 135  # MQTT v5 reason code 0x87
WAIT = 10.0  # seconds; a bound on waits, never a timing assertion


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One fleet CA with a server certificate for the module's brokers."""
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


class Session:
    """A connected TLS client and what it received; closed by the `connect` fixture."""

    def __init__(self, client: mqtt.Client, recorder: Recorder) -> None:
        self.client = client
        self.seen = recorder

    def subscribe(self, topic: str) -> list[int]:
        """Subscribe at QoS 1; the SUBACK reason codes."""
        _rc, mid = self.client.subscribe(topic, qos=1)
        assert self.seen.wait_for(lambda: mid in self.seen.subacks, WAIT)
        return [code.value for code in self.seen.subacks[mid]]

    def publish(self, topic: str, payload: bytes = b"x", *, retain: bool = False) -> int:
        """Publish at QoS 1; the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert self.seen.wait_for(lambda: info.mid in self.seen.pubacks, WAIT)
        return int(self.seen.pubacks[info.mid].value)

    def wait_for_topic(self, topic: str) -> list[str]:
        """Wait until a message on `topic` arrives; every topic received so far."""
        assert self.seen.wait_for(lambda: topic in self.seen.topics(), WAIT), self.seen.topics()
        return self.seen.topics()


class Connector:
    """Opens TLS sessions to one broker: devices on the device port, "hub" on the hub port."""

    def __init__(self, broker: TlsBroker, pki: Pki) -> None:
        self.broker = broker
        self.pki = pki
        self.opened: list[mqtt.Client] = []

    def __call__(self, identity: str, *, client_id: str | None = None) -> Session:
        """A connected session for `identity`, its network loop in paho's thread."""
        cert = self.pki.client(identity)
        client = tls_client(cert, client_id=client_id or identity, ca_cert=cert.ca_cert)
        recorder = Recorder(client)
        hub = identity == ca.HUB_IDENTITY
        client.connect(self.broker.host, self.broker.hub_port if hub else self.broker.device_port)
        client.loop_start()
        self.opened.append(client)
        assert recorder.wait_for(lambda: recorder.connacks, WAIT), self.broker.log()[-2000:]
        assert not recorder.connacks[0].is_failure
        return Session(client, recorder)

    def hub(self) -> Session:
        """A hub worker, subscribed as topics.hub_subscriptions() says."""
        hub = self(ca.HUB_IDENTITY, client_id="hub-worker-1")
        for topic in topics.hub_subscriptions():
            assert hub.subscribe(topic) == [1]
        return hub

    def crash_with_will(self, identity: str, will_topic: str) -> None:
        """Connect with a retained Last Will, then drop the connection without DISCONNECT."""
        cert = self.pki.client(identity)
        client = tls_client(cert, client_id=identity, ca_cert=cert.ca_cert)
        client.will_set(will_topic, b'{"online": false}', qos=1, retain=True)
        recorder = Recorder(client)
        client.connect(self.broker.host, self.broker.device_port)
        # Driven by hand (no thread), so nothing reconnects after the cut.
        assert _drive(client, lambda: recorder.connacks)
        assert not recorder.connacks[0].is_failure
        sock = client.socket()
        assert sock is not None
        sock.close()  # a power cut: no DISCONNECT, so the broker publishes the will

    def close(self) -> None:
        """Disconnect every session (a crashed one's loop is already stopped)."""
        for client in self.opened:
            client.disconnect()
            client.loop_stop()


@pytest.fixture
def connect(tls_broker: TlsBroker, pki: Pki) -> Iterator[Connector]:
    """Open TLS sessions to the broker; all closed after the test."""
    connector = Connector(tls_broker, pki)
    yield connector
    connector.close()


def test_a_device_publishes_its_own_up_topics_and_the_shared_hub_subscription_gets_them(
    connect: Connector,
) -> None:
    hub = connect.hub()
    kiosk = connect("kiosk-a")
    own = [
        topics.sales_up("kiosk-a"),
        topics.journal_up("kiosk-a"),
        topics.health("kiosk-a"),
        topics.catalog_request("kiosk-a"),
        topics.command_update("kiosk-a"),
        topics.config_reported("kiosk-a"),
        topics.logs_up("kiosk-a"),
        topics.status("kiosk-a"),
    ]
    for topic in own:
        assert kiosk.publish(topic) == 0, topic
    hub.wait_for_topic(own[-1])
    assert hub.seen.topics() == own


def test_a_device_cannot_publish_to_another_devices_topics_or_the_hub_state(
    connect: Connector,
) -> None:
    hub = connect.hub()
    assert hub.subscribe(topics.HUB_STATE) == [1]
    kiosk = connect("kiosk-a")
    forbidden = [
        topics.sales_up("kiosk-b"),
        topics.journal_up("kiosk-b"),
        topics.status("kiosk-b"),
        topics.health("kiosk-b"),
        topics.sales_ack("kiosk-a"),  # its own down topics are the hub's to write
        topics.journal_ack("kiosk-a"),
        topics.command("kiosk-a"),
        topics.HUB_STATE,
        "pos/v1/elsewhere",
    ]
    for topic in forbidden:
        assert kiosk.publish(topic) == NOT_AUTHORIZED, topic
    barrier = topics.sales_up("kiosk-a")
    assert kiosk.publish(barrier) == 0
    assert hub.wait_for_topic(barrier) == [barrier]


def test_a_device_reads_its_own_down_topics_and_the_hub_state(connect: Connector) -> None:
    hub = connect.hub()
    kiosk = connect("kiosk-a")
    for topic in topics.device_subscriptions("kiosk-a"):
        assert kiosk.subscribe(topic) == [1]
    sent = [
        topics.sales_ack("kiosk-a"),
        topics.journal_ack("kiosk-a"),
        topics.catalog_down("kiosk-a"),
        topics.command("kiosk-a"),
        topics.config_desired("kiosk-a"),
        topics.HUB_STATE,
    ]
    for topic in sent:
        assert hub.publish(topic) == 0
    assert kiosk.wait_for_topic(topics.HUB_STATE) == sent


def test_a_device_never_receives_another_devices_messages_whatever_it_subscribes(
    connect: Connector,
) -> None:
    hub = connect.hub()
    kiosk = connect("kiosk-a")
    filters = [
        "pos/v1/d/kiosk-b/down/#",
        "pos/v1/d/+/down/#",
        "pos/v1/d/+/up/#",
        "#",
        "$share/snoop/pos/v1/d/kiosk-b/down/#",
    ]
    for topic in filters:
        # mosquitto's acl_file grants every SUBSCRIBE and checks each delivery instead;
        # a broker that judges filters answers 0x87. Either way nothing may arrive.
        assert kiosk.subscribe(topic)[0] in (1, NOT_AUTHORIZED), topic
    for topic in (topics.command("kiosk-b"), topics.sales_ack("kiosk-b")):
        assert hub.publish(topic) == 0
    # kiosk-b's up traffic is not for kiosk-a either (the hub worker gets it).
    kiosk_b = connect("kiosk-b")
    assert kiosk_b.publish(topics.sales_up("kiosk-b")) == 0
    hub.wait_for_topic(topics.sales_up("kiosk-b"))
    barrier = topics.command("kiosk-a")
    assert hub.publish(barrier) == 0
    kiosk.wait_for_topic(barrier)
    assert set(kiosk.seen.topics()) == {barrier}


def test_a_device_cannot_take_over_another_devices_session_by_its_client_id(
    connect: Connector,
) -> None:
    hub = connect.hub()
    victim = connect("kiosk-b")
    assert victim.subscribe(topics.command("kiosk-b")) == [1]
    # The broker replaces the claimed client id with the certificate CN, so this is just
    # kiosk-a's own session: kiosk-b keeps its connection.
    connect("kiosk-a", client_id="kiosk-b")
    assert hub.publish(topics.command("kiosk-b")) == 0
    victim.wait_for_topic(topics.command("kiosk-b"))
    assert victim.seen.disconnects == []


def test_a_last_will_on_another_devices_status_is_not_delivered(connect: Connector) -> None:
    hub = connect.hub()
    connect.crash_with_will("kiosk-a", topics.status("kiosk-b"))
    connect.crash_with_will("kiosk-a", topics.status("kiosk-a"))
    assert hub.wait_for_topic(topics.status("kiosk-a")) == [topics.status("kiosk-a")]


def _refused(broker: TlsBroker, cert: ClientCert | None, ca_cert: Path, port: int) -> Recorder:
    """Try to connect; return what happened once the attempt has ended one way or another."""
    client = tls_client(cert, client_id="intruder", ca_cert=ca_cert)
    recorder = Recorder(client)
    try:
        client.connect(broker.host, port)
    except OSError:
        # TLS 1.2 fails inside the handshake; TLS 1.3 reports it after, as a disconnect.
        return recorder
    deadline = time.monotonic() + WAIT
    while not (recorder.connacks or recorder.disconnects):
        assert time.monotonic() < deadline, "the broker neither accepted nor refused"
        try:
            if client.loop(timeout=0.05) not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
                break  # the connection is gone (MQTT_ERR_CONN_LOST and the like)
        except OSError:
            break  # or surfaced as a socket error in a later read
    return recorder


def _drive(client: mqtt.Client, done: Callable[[], object]) -> bool:
    """Run a client's network loop in this thread until `done()`; False if WAIT runs out."""
    deadline = time.monotonic() + WAIT
    while not done():
        if time.monotonic() > deadline:
            return False
        if client.loop(timeout=0.05) not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            return bool(done())
    return True


def _logged(broker: TlsBroker, text: str) -> bool:
    """Wait until the broker logs `text`: it sends the TLS alert before it writes the line."""
    deadline = time.monotonic() + WAIT
    while text not in broker.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("port_name", ["device_port", "hub_port"])
def test_a_client_without_a_certificate_is_refused(
    tls_broker: TlsBroker, pki: Pki, port_name: str
) -> None:
    seen = _refused(tls_broker, None, pki.ca_cert, getattr(tls_broker, port_name))
    assert not any(not code.is_failure for code in seen.connacks)
    assert _logged(tls_broker, "peer did not return a certificate")


@pytest.mark.parametrize("identity", ["kiosk-a", ca.HUB_IDENTITY])
def test_a_certificate_from_another_ca_is_refused(
    tls_broker: TlsBroker, pki: Pki, tmp_path: Path, identity: str
) -> None:
    rogue = Pki.create(tmp_path / "rogue")
    cert = rogue.client(identity)
    port = tls_broker.hub_port if identity == ca.HUB_IDENTITY else tls_broker.device_port
    # The rogue client trusts the real broker; only the broker's check can stop it.
    seen = _refused(tls_broker, cert, pki.ca_cert, port)
    assert not any(not code.is_failure for code in seen.connacks)
    assert _logged(tls_broker, "certificate verify failed")


def _production_config(pki: Pki, workdir: Path, device_port: int, hub_port: int) -> str:
    """The shipped mosquitto.conf pointed at test files, ports and loopback."""
    etc = workdir / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    for source, name in (
        (pki.ca_cert, "ca.crt"),
        (pki.server_cert, "server.crt"),
        (pki.server_key, "server.key"),
        (SHIPPED_ACL, "acl"),
    ):
        (etc / name).write_bytes(source.read_bytes())
    (workdir / "lib").mkdir(exist_ok=True)
    text = SHIPPED_CONF.read_text()
    text = text.replace("/etc/appliance-hub/", f"{etc}/")
    text = text.replace(
        "persistence_location /var/lib/mosquitto/", f"persistence_location {workdir}/lib/"
    )
    text, devices = re.subn(r"(?m)^listener 8883$", f"listener {device_port} 127.0.0.1", text)
    text, hubs = re.subn(
        r"(?m)^listener 8884 127\.0\.0\.1$", f"listener {hub_port} 127.0.0.1", text
    )
    text = text.replace("log_dest stderr", f"log_dest file {workdir}/mosquitto.log")
    assert (devices, hubs) == (1, 1), "the shipped listeners moved: update this test"
    settings = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "/etc/appliance-hub" in line or " /var/" in line]
    # Root-owned 0600 keys: keep root rather than drop to user mosquitto (test only).
    return text + "\nuser root\n"


@contextlib.contextmanager
def _production_broker(pki: Pki, workdir: Path) -> Iterator[tuple[int, int]]:
    """Run mosquitto on the rewritten shipped config; yield (device port, hub port)."""
    for _attempt in range(3):
        device_port, hub_port = free_port(), free_port()
        config = workdir / "mosquitto.conf"
        config.write_text(_production_config(pki, workdir, device_port, hub_port))
        process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if _listening(process, (device_port, hub_port)):
                yield device_port, hub_port
                return
        finally:
            process.terminate()
            process.wait(timeout=10)
            if process.stderr:
                process.stderr.close()
        # Exited early: another process took a port after free_port(); try fresh ones.
    log = workdir / "mosquitto.log"
    pytest.fail(f"mosquitto did not start: {log.read_text() if log.exists() else ''}")


def _listening(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> bool:
    deadline = time.monotonic() + WAIT
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.2):
                pending.pop(0)
        except OSError:
            time.sleep(0.02)
    return not pending and process.poll() is None


def test_the_shipped_broker_config_starts_and_enforces_identity(tmp_path: Path, pki: Pki) -> None:
    clients: list[mqtt.Client] = []

    def session(identity: str, port: int, client_id: str) -> Session:
        cert = pki.client(identity)
        client = tls_client(cert, client_id=client_id, ca_cert=cert.ca_cert)
        clients.append(client)
        recorder = Recorder(client)
        client.connect("127.0.0.1", port)
        client.loop_start()
        assert recorder.wait_for(lambda: recorder.connacks, WAIT)
        assert not recorder.connacks[0].is_failure
        return Session(client, recorder)

    with _production_broker(pki, tmp_path) as (device_port, hub_port):
        try:
            # Two hub workers share the CN "hub" on their listener, each with its own id.
            hub = session(ca.HUB_IDENTITY, hub_port, "hub-1")
            hub_2 = session(ca.HUB_IDENTITY, hub_port, "hub-2")
            assert hub.subscribe(topics.hub_subscriptions()[0]) == [1]
            victim = session("kiosk-b", device_port, "kiosk-b")
            assert victim.subscribe(topics.command("kiosk-b")) == [1]
            kiosk = session("kiosk-a", device_port, "kiosk-b")  # claims kiosk-b's id
            assert kiosk.publish(topics.sales_up("kiosk-b")) == NOT_AUTHORIZED
            assert kiosk.publish(topics.sales_up("kiosk-a")) == 0
            assert hub.wait_for_topic(topics.sales_up("kiosk-a")) == [topics.sales_up("kiosk-a")]
            assert hub_2.publish(topics.command("kiosk-b")) == 0
            victim.wait_for_topic(topics.command("kiosk-b"))
            assert victim.seen.disconnects == []
            assert hub.seen.disconnects == []
        finally:
            for client in clients:
                client.disconnect()
                client.loop_stop()
