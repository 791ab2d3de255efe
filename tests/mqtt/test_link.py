"""PahoHubLink over a real mosquitto: birth and will with a durable session counter,
the retained hub state, reconnects, mTLS, and malformed messages on every down topic."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import __version__
from appliance.core.events import Event, EventBus
from appliance.mqtt import topics
from appliance.mqtt.client import TlsFiles
from appliance.mqtt.dispatch import Dispatcher, MalformedMessage, down_decoders
from appliance.mqtt.link import HubLinkChanged, LinkState, PahoHubLink, device_id_from_cert
from appliance.mqtt.payloads import (
    CardDebitAnswer,
    CatalogDelta,
    Command,
    DesiredConfig,
    DeviceStatus,
    HelpApprovalAnswer,
    HelpBoard,
    HubState,
    JournalAck,
    SalesAck,
    decode,
    encode,
)
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import migrate
from tests.broker import MosquittoBroker
from tests.mqtt.fake_hub import DeviceStore, FakeHub, eventually
from tests.store.crash_writer import DEVICE_ID

ROOT = Path(__file__).resolve().parents[2]
WAIT = 15.0

LinkFactory = Callable[..., PahoHubLink]


@pytest.fixture
def hub(broker: MosquittoBroker) -> Iterator[FakeHub]:
    """A fake hub, online, listening to statuses."""
    fake = FakeHub(broker.host, broker.port)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def make_link(broker: MosquittoBroker, store: DeviceStore) -> Iterator[LinkFactory]:
    """Opens links to the test broker on the store's session counter; closes them after."""
    links: list[PahoHubLink] = []

    def make(**options: object) -> PahoHubLink:
        options.setdefault("session_store", SessionStore(store.db))
        link = PahoHubLink(DEVICE_ID, broker.host, broker.port, **options)  # type: ignore[arg-type]
        links.append(link)
        link.open()
        return link

    yield make
    for link in links:
        link.close()


def connected(state: LinkState) -> bool:
    """The link is connected."""
    return state.connected


def statuses_of(hub: FakeHub) -> list[tuple[bool, int]]:
    """(online, bd_seq) of every status the hub saw, in order."""
    with hub._cond:
        return [(s.online, s.bd_seq) for s in hub.statuses]


def retained_status(broker: MosquittoBroker) -> DeviceStatus:
    """What a newcomer (the hub after a restart) reads from the retained status topic."""
    got: list[bytes] = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        # Retained, or live when the birth lands just after this subscription: both are
        # the status a newcomer sees (waiting only for retained ones raced the birth).
        got.append(message.payload)
        done.set()

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe(topics.status(DEVICE_ID), qos=1)
    client.loop_start()
    try:
        assert done.wait(WAIT), "no retained status"
    finally:
        client.loop_stop()
        client.disconnect()
    return decode(got[0], DeviceStatus)


# --- the session counter ---


def test_the_session_counter_is_durable_and_unique_across_threads(store: DeviceStore) -> None:
    sessions = SessionStore(store.db)
    assert sessions.current() == 0
    assert sessions.advance() == 1
    taken: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(20):
            number = sessions.advance()
            with lock:
                taken.append(number)
        store.db.close()  # this thread's connection

    workers = [threading.Thread(target=take) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(taken) == list(range(2, 82))
    reopened = open_database(store.path)
    try:
        migrate(reopened)
        assert SessionStore(reopened).current() == 81
    finally:
        reopened.close()


# --- birth, will, reconnects ---


def test_birth_is_retained_online_with_the_session_counter(
    make_link: LinkFactory, broker: MosquittoBroker, store: DeviceStore
) -> None:
    link = make_link()
    assert link.wait_for(connected, WAIT)
    assert link.state.session == 1
    status = retained_status(broker)
    assert status == DeviceStatus(device=DEVICE_ID, online=True, bd_seq=1, firmware=__version__)
    assert SessionStore(store.db).current() == 1


def _link_child(db_path: str, host: str, port: int) -> None:
    """Child process: hold a link open until killed, after saying its session on stdout."""
    db = open_database(db_path)
    link = PahoHubLink(DEVICE_ID, host, port, session_store=SessionStore(db))
    link.open()
    if not link.wait_for(connected, WAIT):
        os._exit(3)
    os.write(1, f"up {link.state.session}\n".encode())
    time.sleep(120)
    os._exit(4)


def test_a_killed_appliance_leaves_its_will_and_the_next_session_is_higher(
    make_link: LinkFactory, broker: MosquittoBroker, hub: FakeHub, store: DeviceStore
) -> None:
    SessionStore(store.db).advance()  # an earlier life: the child's session is 2
    args = f"{str(store.path)!r}, {broker.host!r}, {broker.port}"
    code = f"from tests.mqtt.test_link import _link_child; _link_child({args})"
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode()
        assert line == "up 2\n", child.stderr.read().decode() if child.stderr else line
        assert hub.wait_for(lambda: (True, 2) in statuses_of(hub), WAIT)
    finally:
        child.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
        child.wait(WAIT)
        for stream in (child.stdout, child.stderr):
            if stream:
                stream.close()
    assert hub.wait_for(lambda: (False, 2) in statuses_of(hub), WAIT)
    assert retained_status(broker) == DeviceStatus(
        device=DEVICE_ID, online=False, bd_seq=2, firmware=__version__
    )

    link = make_link()  # the appliance restarted on the same database
    assert link.wait_for(connected, WAIT)
    assert link.state.session == 3
    assert hub.wait_for(lambda: statuses_of(hub)[-1] == (True, 3), WAIT)
    assert retained_status(broker).bd_seq == 3


def test_a_dropped_connection_gives_a_will_then_a_new_birth(
    make_link: LinkFactory, hub: FakeHub
) -> None:
    bus = EventBus()
    link = make_link(bus=bus)
    assert link.wait_for(lambda s: s.ready, WAIT)
    assert hub.wait_for(lambda: (True, 1) in statuses_of(hub), WAIT)
    sock = link._client.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)  # the network goes away: no DISCONNECT packet is sent

    assert hub.wait_for(lambda: (True, 2) in statuses_of(hub), WAIT)
    assert statuses_of(hub) == [(True, 1), (False, 1), (True, 2)]
    assert link.wait_for(lambda s: s.ready and s.session == 2, WAIT)
    events: list[Event] = []
    bus.subscribe(HubLinkChanged, events.append)
    bus.drain()
    changes = [(e.connected, e.hub_online, e.session) for e in events]  # type: ignore[attr-defined]
    assert all(e.at.tzinfo is not None for e in events)  # type: ignore[attr-defined]
    assert changes == [
        (True, False, 1),
        (True, True, 1),
        (False, False, 1),
        (True, False, 2),
        (True, True, 2),
    ]


def test_closing_publishes_the_will_with_the_same_session(
    make_link: LinkFactory, broker: MosquittoBroker, hub: FakeHub
) -> None:
    link = make_link()
    assert link.wait_for(connected, WAIT)
    link.close()
    link.close()  # safe twice
    assert hub.wait_for(lambda: (False, 1) in statuses_of(hub), WAIT)
    assert retained_status(broker).online is False
    assert link.state == LinkState(connected=False, hub_online=False, session=1)


def test_the_retained_hub_state_decides_readiness(
    make_link: LinkFactory, broker: MosquittoBroker
) -> None:
    hub = FakeHub(broker.host, broker.port, online=False)
    hub.start()
    try:
        link = make_link()
        assert link.wait_for(connected, WAIT)
        assert eventually(lambda: link.dispatcher.counts().delivered >= 1)
        assert not link.state.ready  # the retained offline state arrived
        hub.set_online(True)
        assert link.wait_for(lambda s: s.ready, WAIT)
        hub.publish_raw(topics.HUB_STATE, b"", retain=True)  # the hub state was cleared
        assert link.wait_for(lambda s: s.connected and not s.hub_online, WAIT)
        hub.set_online(True)
        assert link.wait_for(lambda s: s.ready, WAIT)
    finally:
        hub.stop()  # the hub's will: offline
    assert link.wait_for(lambda s: s.connected and not s.hub_online, WAIT)


def test_the_link_reconnects_after_a_broker_restart(
    make_link: LinkFactory, broker: MosquittoBroker, hub: FakeHub
) -> None:
    link = make_link()
    assert link.wait_for(lambda s: s.ready, WAIT)
    broker.kill()
    assert link.wait_for(lambda s: not s.connected, WAIT)
    assert not link.publish(topics.health(DEVICE_ID), b"{}", qos=0)  # nothing is queued
    broker.start()
    # The retained state died with the broker; the hub republishes it when it is back.
    assert link.wait_for(lambda s: s.ready and s.session >= 2, WAIT)


# --- malformed and unexpected messages ---


def _valid_payloads() -> dict[str, bytes]:
    """One valid payload for each topic a device receives."""
    return {
        topics.HUB_STATE: encode(HubState(online=True)),
        topics.sales_ack(DEVICE_ID): encode(SalesAck(upto_seq=1)),
        topics.journal_ack(DEVICE_ID): encode(JournalAck(upto_number=1)),
        topics.catalog_down(DEVICE_ID): encode(CatalogDelta(from_version=0, to_version=1)),
        topics.command(DEVICE_ID): encode(
            Command(
                id="c1",
                device=DEVICE_ID,
                name="lock",
                issued_at="2024-01-01T00:00:00+00:00",
                expires_at="2024-01-01T00:05:00+00:00",
            )
        ),
        topics.config_desired(DEVICE_ID): encode(DesiredConfig(version=1, config={})),
        topics.help_board(DEVICE_ID): encode(HelpBoard(store="s", at="2024-01-01T00:00:00+00:00")),
        topics.help_approval_answer(DEVICE_ID): encode(HelpApprovalAnswer(id="r1", state="sent")),
        topics.card_debit_answer(DEVICE_ID): encode(
            CardDebitAnswer(reference="sv-1", outcome="approved", balance=100)
        ),
    }


def _bad_payloads() -> list[tuple[str, bytes]]:
    """Garbage, a wrong JSON shape and a newer schema version, for each down topic."""
    valid = _valid_payloads()
    assert set(valid) == set(down_decoders(DEVICE_ID))  # every down topic is covered
    bad: list[tuple[str, bytes]] = []
    for topic, payload in valid.items():
        down_decoders(DEVICE_ID)[topic](payload)  # valid as it is: only `v` makes it newer
        newer = msgspec.json.decode(payload)
        newer["v"] = 99
        bad.append((topic, b"\xff\x00not json"))
        bad.append((topic, b'{"v": 1, "unexpected": [1, 2, 3]}'))
        bad.append((topic, msgspec.json.encode(newer)))
    return bad


def test_malformed_messages_on_every_down_topic_are_counted_and_the_link_keeps_working(
    store: DeviceStore, hub: FakeHub
) -> None:
    bus = EventBus()
    acks: list[SalesAck] = []
    got_ack = threading.Event()
    link = PahoHubLink(DEVICE_ID, hub.host, hub.port, bus=bus, session_store=SessionStore(store.db))
    link.dispatcher.on(topics.sales_ack(DEVICE_ID), lambda a: (acks.append(a), got_ack.set()))
    with link:
        assert link.wait_for(lambda s: s.ready, WAIT)
        bad = [*_bad_payloads(), (f"{topics.device_root(DEVICE_ID)}/down/unknown", b"{}")]
        for topic, payload in bad:
            hub.publish_raw(topic, payload)
        assert eventually(lambda: link.dispatcher.malformed == len(bad))
        assert len(bad) == 28  # three bad payloads on each of 9 down topics, one unknown topic
        assert link.state.ready  # garbage on the hub-state topic changed nothing
        hub.publish_raw(topics.sales_ack(DEVICE_ID), encode(SalesAck(upto_seq=7)))
        assert got_ack.wait(WAIT)
        assert acks == [SalesAck(upto_seq=7)]
        assert link.state.connected
    reported: list[Event] = []
    bus.subscribe(MalformedMessage, reported.append)
    bus.drain()
    assert len(reported) == len(bad)
    assert {e.topic for e in reported} == {t for t, _ in bad}  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topic=st.sampled_from(sorted(down_decoders(DEVICE_ID))),
    payload=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.sampled_from(["v", "kind", "online", "upto_seq", "x"]), inner)
            ),
            max_leaves=12,
        ).map(msgspec.json.encode),
    ),
)
def test_the_dispatcher_never_raises_on_fuzzed_payloads(topic: str, payload: bytes) -> None:
    dispatcher = Dispatcher(DEVICE_ID)
    received: list[object] = []
    for each in down_decoders(DEVICE_ID):
        dispatcher.on(each, received.append)
    delivered = dispatcher.dispatch(topic, payload)
    counts = dispatcher.counts()
    assert delivered == bool(received)
    assert counts.delivered + counts.malformed == (1 if payload else 0)


def test_a_failing_handler_is_logged_and_counted_not_raised() -> None:
    dispatcher = Dispatcher(DEVICE_ID)

    def broken(_ack: SalesAck) -> None:
        raise RuntimeError("bug")

    dispatcher.on(topics.sales_ack(DEVICE_ID), broken)
    assert not dispatcher.dispatch(topics.sales_ack(DEVICE_ID), encode(SalesAck(upto_seq=1)))
    assert dispatcher.counts().handler_errors == 1
    with pytest.raises(ValueError, match="not a topic"):
        dispatcher.on(topics.sales_up(DEVICE_ID), broken)


# --- mTLS with the shipped broker configuration ---


def test_the_link_connects_over_mtls_and_its_identity_is_the_certificate_cn(
    tmp_path: Path, store: DeviceStore
) -> None:
    from tests.mqtt.tls_broker import Pki, TlsBroker

    pki = Pki.create(tmp_path / "pki")
    cert = pki.client(DEVICE_ID)
    assert device_id_from_cert(cert.cert) == DEVICE_ID
    tls_broker = TlsBroker(tmp_path / "tls-broker", pki)
    tls_broker.start()
    try:
        tls = TlsFiles(ca=pki.ca_cert, cert=cert.cert, key=cert.key)
        link = PahoHubLink(
            DEVICE_ID,
            "localhost",
            tls_broker.device_port,
            tls=tls,
            session_store=SessionStore(store.db),
        )
        with link:
            assert link.wait_for(connected, WAIT), tls_broker.log()
            # The ACL lets the device publish its own status: a hub worker reads the birth.
            hub_cert = pki.client("hub")
            seen: list[DeviceStatus] = []
            done = threading.Event()
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            client.tls_set(
                ca_certs=str(pki.ca_cert), certfile=str(hub_cert.cert), keyfile=str(hub_cert.key)
            )

            def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
                seen.append(decode(message.payload, DeviceStatus))
                done.set()

            client.on_message = on_message
            client.connect("localhost", tls_broker.hub_port)
            client.subscribe(topics.status(DEVICE_ID), qos=1)
            client.loop_start()
            try:
                assert done.wait(WAIT), tls_broker.log()
            finally:
                client.loop_stop()
                client.disconnect()
            assert seen[0].online and seen[0].bd_seq == 1
    finally:
        tls_broker.stop()


def test_the_birth_is_qos_0_so_a_dropped_link_never_sends_an_old_one_again(
    make_link: LinkFactory, broker: MosquittoBroker
) -> None:
    """A QoS 1 birth unacknowledged at a drop is re-sent after the next CONNECT, behind the
    new birth, and would put the older session back as the retained status; QoS 0 is
    never re-sent (Sparkplug's NBIRTH is QoS 0 for this reason)."""
    seen: list[tuple[bool, int, int]] = []  # (online, bd_seq, delivered QoS)
    arrived = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            return  # only what the device sends from now on
        status = decode(message.payload, DeviceStatus)
        seen.append((status.online, status.bd_seq, message.qos))
        arrived.set()

    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.subscribe(topics.status(DEVICE_ID), qos=1)  # QoS 1 asked: the sender's QoS wins
    client.loop_start()
    try:
        assert subscribed.wait(WAIT)  # in place before the device connects
        link = make_link()
        assert link.wait_for(lambda s: s.connected, WAIT)
        assert arrived.wait(WAIT)
        sock = link._client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # the network goes away: the broker sends the will
        assert link.wait_for(lambda s: s.connected and s.session == 2, WAIT)
        deadline = time.monotonic() + WAIT
        while (True, 2, 0) not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    assert seen[:3] == [(True, 1, 0), (False, 1, 1), (True, 2, 0)]
    assert retained_status(broker).bd_seq == 2
