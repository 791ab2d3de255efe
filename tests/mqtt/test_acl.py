"""The shipped broker ACL and mTLS setup, proved against a real mosquitto over TLS on loopback.

Device identity is the CN of its certificate (hub/ca.py); hub/mosquitto/acl grants each
device its own subtree only. Where nothing may arrive, a test waits for a later
"barrier" message the same subscriber is allowed to get instead of sleeping: the broker
delivers to one subscriber in order, so a forbidden message that got through would show
up before the barrier.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from appliance.mqtt import topics
from appliance.mqtt.link import PahoHubLink, PublishCounts, TlsFiles
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import migrate
from hub import ca
from tests.broker import free_port, mosquitto_binary
from tests.mqtt.tls_broker import (
    SHIPPED_ACL,
    SHIPPED_CONF,
    WAIT,
    Connector,
    Pki,
    Recorder,
    Session,
    TlsBroker,
    accepted,
    attempt_connect,
    tls_client,
    wait_logged,
)

NOT_AUTHORIZED = 135  # MQTT v5 reason code 0x87
NO_MATCHING_SUBSCRIBERS = 16  # MQTT v5 reason code 0x10, a success


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
    # A topic two of the hub's subscriptions match (config-reported) arrives once for each.
    assert list(dict.fromkeys(hub.seen.topics())) == own


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


def test_a_qos1_publish_nobody_subscribed_to_is_acknowledged_0x10_and_that_is_success(
    connect: Connector,
) -> None:
    # No hub runs: the broker answers a device's QoS 1 upload "No matching subscribers".
    kiosk = connect("kiosk-a")
    assert kiosk.publish(topics.command_update("kiosk-a")) == NO_MATCHING_SUBSCRIBERS
    [code] = kiosk.seen.pubacks.values()
    assert not code.is_failure  # paho's rule: a failure is a reason code of 0x80 or more


def test_the_device_link_counts_a_0x10_puback_as_accepted_and_only_0x87_as_refused(
    tls_broker: TlsBroker, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_database(tmp_path / "appliance.db")
    migrate(db, backup_dir=tmp_path / "backups")
    cert = pki.client("kiosk-a")
    link = PahoHubLink(
        "kiosk-a",
        tls_broker.host,
        tls_broker.device_port,
        tls=TlsFiles(cert.ca_cert, cert.cert, cert.key),
        session_store=SessionStore(db),
    )
    caplog.set_level(logging.ERROR, logger="appliance.mqtt.link")
    try:
        with link:
            assert link.wait_for(lambda state: state.connected, WAIT), tls_broker.log()
            # Nobody subscribes to either topic: both PUBACKs are 0x10.
            assert link.publish(topics.command_update("kiosk-a"), b"{}", qos=1)
            assert link.publish(topics.config_reported("kiosk-a"), b"{}", qos=1, retain=True)
            # The control: a topic the ACL refuses, PUBACK 0x87.
            assert link.publish(topics.command_update("kiosk-b"), b"{}", qos=1)
            # The birth (QoS 0, counted once written) and the three answers.
            deadline = time.monotonic() + WAIT
            while sum(_counts(link.publishes)) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert link.publishes == PublishCounts(accepted=3, refused=1)
    finally:
        db.close()
    refusals = [r.getMessage() for r in caplog.records if "refused publish" in r.getMessage()]
    assert len(refusals) == 1 and "Not authorized" in refusals[0]


def _counts(counts: PublishCounts) -> tuple[int, int]:
    return counts.accepted, counts.refused


def test_a_last_will_on_another_devices_status_is_not_delivered(connect: Connector) -> None:
    hub = connect.hub()
    connect.crash_with_will("kiosk-a", topics.status("kiosk-b"))
    connect.crash_with_will("kiosk-a", topics.status("kiosk-a"))
    assert hub.wait_for_topic(topics.status("kiosk-a")) == [topics.status("kiosk-a")]


@pytest.mark.parametrize("port_name", ["device_port", "hub_port"])
def test_a_client_without_a_certificate_is_refused(
    tls_broker: TlsBroker, pki: Pki, port_name: str
) -> None:
    seen = attempt_connect(tls_broker, None, pki.ca_cert, getattr(tls_broker, port_name))
    assert not accepted(seen)
    assert wait_logged(tls_broker, "peer did not return a certificate")


@pytest.mark.parametrize("identity", ["kiosk-a", ca.HUB_IDENTITY])
def test_a_certificate_from_another_ca_is_refused(
    tls_broker: TlsBroker, pki: Pki, tmp_path: Path, identity: str
) -> None:
    rogue = Pki.create(tmp_path / "rogue")
    cert = rogue.client(identity)
    port = tls_broker.hub_port if identity == ca.HUB_IDENTITY else tls_broker.device_port
    # The rogue client trusts the real broker; only the broker's check can stop it.
    seen = attempt_connect(tls_broker, cert, pki.ca_cert, port)
    assert not accepted(seen)
    assert wait_logged(tls_broker, "certificate verify failed")


def _production_config(pki: Pki, workdir: Path, device_port: int, hub_port: int) -> str:
    """The shipped mosquitto.conf pointed at test files, ports and loopback."""
    etc = workdir / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    for source, name in (
        (pki.ca_cert, "ca.crt"),
        (pki.hub_ca_cert, "hub-ca.crt"),
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
            hub = session(ca.HUB_IDENTITY, hub_port, "hub:1")
            hub_2 = session(ca.HUB_IDENTITY, hub_port, "hub:2")
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
