"""A real mosquitto with the hub's mTLS listeners and the shipped ACL, for tests.

Mirrors hub/mosquitto/mosquitto.conf: a device listener that trusts the fleet CA, where the
certificate CN is the username and the client id, and a hub-worker listener that trusts
the hub CA only, where the CN is the username but workers pick their own client ids.
Certificates come from hub.ca, made in a temp folder.
The plain listener of tests.broker.MosquittoBroker stays (it is how start() knows the
broker is up); a client that wants TLS connects to `device_port` or `hub_port`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from appliance.mqtt import topics
from hub import ca
from tests.broker import MosquittoBroker, free_port

SHIPPED_ACL = Path(__file__).resolve().parents[2] / "hub" / "mosquitto" / "acl"
SHIPPED_CONF = SHIPPED_ACL.with_name("mosquitto.conf")
WAIT = 10.0  # seconds; a bound on waits, never a timing assertion


@dataclass(frozen=True, slots=True)
class ClientCert:
    """A client's identity files: its certificate, key and the CA that verifies the broker."""

    identity: str
    cert: Path
    key: Path
    ca_cert: Path


@dataclass(frozen=True, slots=True)
class Pki:
    """The fleet and hub CAs and the broker's server certificate, in `root`."""

    root: Path
    ca_dir: Path
    ca_cert: Path  # the fleet CA: devices, the broker; every client verifies the broker
    hub_ca_cert: Path  # the hub CA: hub workers' certificates, trusted on the hub listener
    server_cert: Path
    server_key: Path

    @classmethod
    def create(cls, root: Path) -> Pki:
        """Make both CAs and a server certificate for localhost / 127.0.0.1."""
        ca_dir = root / "ca"
        ca_cert = ca.init_ca(ca_dir)
        server_cert, server_key = ca.issue_server(ca_dir, "localhost", root / "server")
        return cls(root, ca_dir, ca_cert, ca_dir / ca.HUB_CA_CERT, server_cert, server_key)

    def client(self, identity: str) -> ClientCert:
        """The client certificate for `identity` ("hub" for the hub), issued on first use."""
        out = self.root / "clients" / identity
        cert, key = out / f"{identity}.crt", out / f"{identity}.key"
        if not cert.exists():
            if identity == ca.HUB_IDENTITY:
                cert, key = ca.issue_hub(self.ca_dir, out)
            else:
                cert, key = ca.issue_device(self.ca_dir, identity, out)
        return ClientCert(identity, cert, key, out / ca.CA_CERT)


def tls_listeners(pki: Pki, *, device_port: int, hub_port: int) -> str:
    """mosquitto.conf lines for the two mTLS listeners on loopback (no global options)."""
    common = (
        f"certfile {pki.server_cert}\n"
        f"keyfile {pki.server_key}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
    )
    return (
        f"listener {device_port} 127.0.0.1\ncafile {pki.ca_cert}\n{common}"
        "use_username_as_clientid true\n"
        f"listener {hub_port} 127.0.0.1\ncafile {pki.hub_ca_cert}\n{common}"
    )


class TlsBroker:
    """MosquittoBroker plus the hub's mTLS listeners and an ACL file; restartable on its ports."""

    def __init__(self, workdir: Path, pki: Pki, *, acl_file: Path = SHIPPED_ACL) -> None:
        self.pki = pki
        self.acl_file = acl_file
        self.device_port = free_port()
        self.hub_port = free_port()
        self.broker = MosquittoBroker(workdir, extra_config=self._extra_config())
        self.host = self.broker.host
        self._started_once = False

    def _extra_config(self) -> str:
        # Global options first: mosquitto applies options after a `listener` line to it.
        return (
            f"acl_file {self.acl_file}\n"
            # Started as root, mosquitto would drop to user mosquitto and fail to read the
            # 0600 keys hub.ca writes.
            "user root\n"
            + tls_listeners(self.pki, device_port=self.device_port, hub_port=self.hub_port)
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart, on the same ports) the broker; returns once every listener is up."""
        attempts = 1 if self._started_once else 3
        for attempt in range(attempts):
            self.broker.start(timeout)
            if self._wait_tls(timeout):
                self._started_once = True
                return
            log = self.log()
            self.broker.stop()
            if attempt + 1 < attempts:
                # Another process took a port between free_port() and mosquitto's bind.
                self.device_port, self.hub_port = free_port(), free_port()
                self.broker.port = free_port()
                self.broker.extra_config = self._extra_config()
        raise RuntimeError(f"mosquitto TLS listeners did not come up: {log[-2000:]}")

    def _wait_tls(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        pending = [self.device_port, self.hub_port]
        process = self.broker.process
        while pending and time.monotonic() < deadline:
            if process is None or process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, pending[0]), timeout=0.2):
                    pending.pop(0)
            except OSError:
                time.sleep(0.02)
        return not pending and process is not None and process.poll() is None

    def stop(self) -> None:
        """Stop the broker by its PID; safe twice."""
        self.broker.stop()

    def kill(self) -> None:
        """SIGKILL the broker."""
        self.broker.kill()

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        try:
            return self.broker.log_path.read_text()
        except OSError:
            return ""


def tls_client(cert: ClientCert | None, *, client_id: str, ca_cert: Path) -> mqtt.Client:
    """A paho MQTT v5 client set up for TLS; without `cert` it offers no client certificate."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if cert is None:
        client.tls_set(ca_certs=str(ca_cert))
    else:
        client.tls_set(ca_certs=str(ca_cert), certfile=str(cert.cert), keyfile=str(cert.key))
    return client


class Recorder:
    """Collects what paho's network thread reports, for a test thread to wait on."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self._cond = threading.Condition()
        self.connacks: list[mqtt.ReasonCode] = []
        self.disconnects: list[mqtt.ReasonCode] = []
        self.subacks: dict[int, list[mqtt.ReasonCode]] = {}
        self.pubacks: dict[int, mqtt.ReasonCode] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self.connect_failed = False
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> bool:
        """Wait until `predicate()` is true; False on timeout."""
        with self._cond:
            return bool(self._cond.wait_for(predicate, timeout))

    def topics(self) -> list[str]:
        """Topics of the messages received so far, in order."""
        with self._cond:
            return [message.topic for message in self.messages]

    def _notify(self) -> None:
        self._cond.notify_all()

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object
    ) -> None:
        with self._cond:
            self.connacks.append(rc)
            self._notify()

    def _on_connect_fail(self, _c: mqtt.Client, _u: object) -> None:
        with self._cond:
            self.connect_failed = True
            self._notify()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object
    ) -> None:
        with self._cond:
            self.disconnects.append(rc)
            self._notify()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, codes: list[mqtt.ReasonCode], _p: object
    ) -> None:
        with self._cond:
            self.subacks[mid] = list(codes)
            self._notify()

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: mqtt.ReasonCode, _p: object
    ) -> None:
        with self._cond:
            self.pubacks[mid] = rc
            self._notify()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._notify()


class Session:
    """A connected TLS client and what it received; closed by its Connector."""

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

    def hub(self, worker_id: str = "worker-1") -> Session:
        """A hub worker (client id `hub:WORKER_ID`), subscribed as topics.hub_subscriptions()."""
        hub = self(ca.HUB_IDENTITY, client_id=f"hub:{worker_id}")
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
        assert drive(client, lambda: recorder.connacks)
        assert not recorder.connacks[0].is_failure
        sock = client.socket()
        assert sock is not None
        sock.close()  # a power cut: no DISCONNECT, so the broker publishes the will

    def close(self) -> None:
        """Disconnect every session (a crashed one's loop is already stopped)."""
        for client in self.opened:
            client.disconnect()
            client.loop_stop()


def attempt_connect(
    broker: TlsBroker,
    cert: ClientCert | None,
    ca_cert: Path,
    port: int,
    *,
    client_id: str = "intruder",
) -> Recorder:
    """Try to connect; return what happened once the attempt has ended one way or another."""
    client = tls_client(cert, client_id=client_id, ca_cert=ca_cert)
    recorder = Recorder(client)
    try:
        client.connect(broker.host, port)
    except OSError:
        # TLS 1.2 fails inside the handshake; TLS 1.3 reports it after, as a disconnect.
        return recorder
    deadline = time.monotonic() + WAIT
    try:
        while not (recorder.connacks or recorder.disconnects):
            assert time.monotonic() < deadline, "the broker neither accepted nor refused"
            try:
                if client.loop(timeout=0.05) not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
                    break  # the connection is gone (MQTT_ERR_CONN_LOST and the like)
            except OSError:
                break  # or surfaced as a socket error in a later read
    finally:
        if recorder.connacks and not recorder.connacks[0].is_failure:
            client.disconnect()  # accepted after all: leave nothing connected behind
    return recorder


def accepted(recorder: Recorder) -> bool:
    """Whether the broker answered a connection attempt with a successful CONNACK."""
    return any(not code.is_failure for code in recorder.connacks)


def drive(client: mqtt.Client, done: Callable[[], object]) -> bool:
    """Run a client's network loop in this thread until `done()`; False if WAIT runs out."""
    deadline = time.monotonic() + WAIT
    while not done():
        if time.monotonic() > deadline:
            return False
        if client.loop(timeout=0.05) not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            return bool(done())
    return True


def wait_logged(broker: TlsBroker, text: str) -> bool:
    """Wait until the broker logs `text`: it sends the TLS alert before it writes the line."""
    deadline = time.monotonic() + WAIT
    while text not in broker.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
