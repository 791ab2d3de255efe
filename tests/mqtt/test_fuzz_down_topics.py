"""Fuzz every down topic through a real mosquitto: the appliance stays up and counts it all.

The appliance is wired as the service wires it: the real PahoHubLink and its Dispatcher,
the SalesUploader (sales-ack), CatalogSync (catalog), CommandHandler (command),
ConfigSync (config-desired) and the link's own hub-state handler, with a main loop
thread draining the bus. Hypothesis makes the payloads: random bytes, random JSON,
valid JSON of the wrong shape, huge numbers, deep nesting and wrong schema versions.
Each message is published QoS 1 and must end up counted exactly once: as malformed when
the topic's strict decoder refuses it, else as delivered; never as a handler error.
Afterwards a valid message on every topic still works.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.core.clock import SystemClock
from appliance.core.events import EventBus
from appliance.mqtt import topics
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.commands import CommandHandler
from appliance.mqtt.config_sync import ConfigSync
from appliance.mqtt.dispatch import DispatchCounts, MalformedMessage, down_decoders
from appliance.mqtt.fleet_actions import KioskLock
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import (
    CatalogDelta,
    CommandUpdate,
    DesiredConfig,
    DeviceStatus,
    ProductPayload,
    ReportedConfig,
    SalesAck,
    decode,
    encode,
)
from appliance.mqtt.uploader import SalesUploader
from appliance.store.command_log import SqliteSeenCommands
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import migrate
from appliance.store.outbox import SalesOutbox
from hub.cli_command import BrokerOptions, FleetClient
from hub.fleet_keys import new_command
from tests.broker import MosquittoBroker
from tests.mqtt.main_loop import start_main_loop

DEVICE = "kiosk-01"
WAIT = 10.0  # an upper bound on waiting for the broker, never asserted
EXAMPLES = 50  # per payload family in `make test`; the soak run does many more
SOAK_EXAMPLES = 5000
KEY = Ed25519PrivateKey.generate()
PRODUCT = {
    "v": 1,
    "sku": "SKU-1",
    "name": "Apple",
    "price": 120,
    "currency": "EUR",
    "tax_class": "standard",
}
# One valid payload per down topic, for mutating into almost-valid ones.
VALID: dict[str, dict[str, Any]] = {
    topics.HUB_STATE: {"v": 1, "online": True, "hub_id": "hub-1"},
    topics.sales_ack(DEVICE): {"v": 1, "upto_seq": 0},
    topics.catalog_down(DEVICE): {
        "v": 1,
        "kind": "delta",
        "from_version": 0,
        "to_version": 1,
        "upserts": [PRODUCT],
        "deletes": [],
    },
    topics.command(DEVICE): json.loads(
        encode(new_command(KEY, DEVICE, "unlock", expires_in=timedelta(hours=1)))
    ),
    topics.config_desired(DEVICE): {"v": 1, "version": 1, "config": {"store": {"name": "x"}}},
}
# Not a topic this device receives, though it matches its subscription (down/#).
UNEXPECTED = f"{topics.device_root(DEVICE)}/down/unexpected"
DOWN_TOPICS = [*VALID, UNEXPECTED]
DECODERS = down_decoders(DEVICE)


@dataclass
class Rig:
    """The appliance (real link and handlers) and a hub-side client to publish with."""

    link: PahoHubLink
    hub: FleetClient
    catalog: CatalogSync
    config: ConfigSync
    malformed_events: list[MalformedMessage]
    sent_malformed: int = 0
    sent_valid: int = 0

    def counts(self) -> DispatchCounts:
        return self.link.dispatcher.counts()

    def publish(self, topic: str, data: bytes) -> None:
        """Publish one message and wait until the dispatcher has counted it."""
        before = self.counts()
        malformed = expect_malformed(topic, data)
        self.hub.publish(topic, data)
        wait_until(lambda: _total(self.counts()) > _total(before))
        after = self.counts()
        assert after.handler_errors == before.handler_errors, (topic, data[:200])
        if malformed:
            self.sent_malformed += 1
            assert after.malformed == before.malformed + 1, (topic, data[:200])
        else:
            self.sent_valid += 1
            assert after.delivered == before.delivered + 1, (topic, data[:200])

    def assert_still_works(self) -> None:
        """Every malformed message counted and reported; valid ones work on every topic."""
        assert self.link.state.connected
        wait_until(lambda: self.counts().malformed >= self.sent_malformed)
        assert self.counts().malformed == self.sent_malformed
        wait_until(lambda: len(self.malformed_events) == self.sent_malformed)
        command = new_command(KEY, DEVICE, "lock", expires_in=timedelta(minutes=5))
        self.hub.publish(topics.command(DEVICE), encode(command))
        seen = [self.next_on(topics.command_update(DEVICE), CommandUpdate, command.id).state]
        while seen[-1] == "QUEUED" or seen[-1] == "IN_PROGRESS":
            seen.append(
                self.next_on(topics.command_update(DEVICE), CommandUpdate, command.id).state
            )
        assert seen == ["QUEUED", "IN_PROGRESS", "SUCCEEDED"]
        reported = self.config.reported
        version = max(reported.version, reported.rejected_version or 0) + 1
        desired = DesiredConfig(version=version, config={"store": {"name": f"v{version}"}})
        self.hub.publish(topics.config_desired(DEVICE), encode(desired))
        assert self.next_on(topics.config_reported(DEVICE), ReportedConfig) == ReportedConfig(
            version=version
        )
        self.catalog.wait_idle(WAIT)
        held = self.catalog.version
        delta = CatalogDelta(
            from_version=held, to_version=held + 1, upserts=[ProductPayload(**PRODUCT)]
        )
        self.hub.publish(topics.catalog_down(DEVICE), encode(delta))
        wait_until(lambda: self.catalog.version == held + 1)
        before = self.counts().delivered
        self.hub.publish(topics.sales_ack(DEVICE), encode(SalesAck(upto_seq=0)))
        wait_until(lambda: self.counts().delivered == before + 1)
        assert self.counts().handler_errors == 0

    def next_on(self, topic: str, kind: type[Any], command_id: str | None = None) -> Any:
        while (message := self.hub.next_message(WAIT)) is not None:
            if message[0] == topic:
                payload = decode(message[1], kind)
                if command_id is None or payload.id == command_id:
                    return payload
        raise AssertionError(f"nothing arrived on {topic}")


def _total(counts: DispatchCounts) -> int:
    return counts.delivered + counts.malformed + counts.handler_errors


def expect_malformed(topic: str, data: bytes) -> bool:
    """What the topic's strict decoder makes of it (as the dispatcher will)."""
    decoder = DECODERS.get(topic)
    if decoder is None:
        return True
    try:
        decoder(data)
    except Exception:  # DecodeError, and RecursionError for deep nesting
        return True
    return False


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert predicate()


@pytest.fixture
def rig(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Rig]:
    db = open_database(tmp_path / "appliance.db")
    migrate(db, backup_dir=tmp_path / "backups")
    config_path = tmp_path / "appliance.toml"
    config_path.write_text('[device]\nid = "kiosk-01"\n')
    bus = EventBus()
    link = PahoHubLink(DEVICE, broker.host, broker.port, bus=bus, session_store=SessionStore(db))

    def publish(topic: str, retain: bool = False) -> Callable[[Any], object]:
        return lambda p: link.publish(topic, encode(p), qos=1, retain=retain)

    uploader = SalesUploader(SalesOutbox(db), link)
    catalog = CatalogSync(db, DEVICE, lambda topic, data: link.publish(topic, data, qos=1), bus=bus)
    link.dispatcher.on(topics.catalog_down(DEVICE), catalog.submit)
    config = ConfigSync(config_path, publish_reported=publish(topics.config_reported(DEVICE)))
    config.route(DEVICE, link.dispatcher, bus)
    clock = SystemClock()
    lock = KioskLock(bus)
    commands = CommandHandler(
        DEVICE,
        KEY.public_key(),
        publish_update=publish(topics.command_update(DEVICE)),
        is_sale_open=lambda: False,
        actions={"lock": lambda _: _locked(lock), "unlock": lambda _: "unlocked"},
        clock=clock,
        seen_store=SqliteSeenCommands(db, clock),
    )
    commands.route(link.dispatcher, bus)
    malformed_events: list[MalformedMessage] = []
    bus.subscribe(MalformedMessage, malformed_events.append)
    stop = threading.Event()
    loop = start_main_loop(bus, stop)
    hub = FleetClient(BrokerOptions(broker.host, broker.port), timeout=WAIT)
    with hub, commands:
        catalog.start()
        uploader.start()
        hub.subscribe(
            topics.status(DEVICE), topics.command_update(DEVICE), topics.config_reported(DEVICE)
        )
        link.open()
        wait_for_birth(hub)
        try:
            yield Rig(link, hub, catalog, config, malformed_events)
        finally:
            link.close()
            uploader.close()
            catalog.stop()
            stop.set()
            loop.join()
    db.close()


def _locked(lock: KioskLock) -> str:
    lock.set(True)
    return "locked"


def wait_for_birth(hub: FleetClient) -> None:
    """The birth follows the device's SUBSCRIBE on its connection: after it, messages land."""
    while (message := hub.next_message(WAIT)) is not None:
        if message[0] == topics.status(DEVICE) and decode(message[1], DeviceStatus).online:
            return
    raise AssertionError("the appliance never came online")


# --- Payload families.

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
topic_names = st.sampled_from(DOWN_TOPICS)


def _dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def random_json(draw: st.DrawFn) -> tuple[str, bytes]:
    return draw(topic_names), _dump(draw(json_values))


@st.composite
def wrong_shape(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid payload with one field dropped, retyped or wrapped, or another topic's payload."""
    topic = draw(st.sampled_from(list(VALID)))
    payload = dict(VALID[topic])
    key = draw(st.sampled_from(sorted(payload)))
    change = draw(st.sampled_from(["drop", "retype", "wrap", "swap"]))
    if change == "drop":
        del payload[key]
    elif change == "retype":
        payload[key] = draw(json_values)
    elif change == "wrap":
        payload[key] = [payload[key]]
    else:
        payload = dict(VALID[draw(st.sampled_from([t for t in VALID if t != topic]))])
    return topic, _dump(payload)


@st.composite
def huge_numbers(draw: st.DrawFn) -> tuple[str, bytes]:
    """Every number of a valid payload replaced by one far out of range."""
    topic = draw(st.sampled_from(list(VALID)))
    huge = draw(
        st.sampled_from(["1e999", "-1e999", "1e308", "18446744073709551616", "-9" * 400])
        | st.integers(min_value=2**63).map(str)
        | st.integers(max_value=-(2**63) - 1).map(str)
    )
    text = json.dumps(VALID[topic])
    for number in ("120", "1", "0"):
        text = text.replace(f": {number},", f": {huge},").replace(f": {number}}}", f": {huge}}}")
    return topic, text.encode()


@st.composite
def deep_nesting(draw: st.DrawFn) -> tuple[str, bytes]:
    """Arrays or objects nested up to 20,000 deep, bare or inside a valid field."""
    depth = draw(st.integers(min_value=10, max_value=20_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    inner = (
        opener * depth + "1" + closer * depth
        if opener == '{"a":'
        else opener * depth + closer * depth
    )
    topic = draw(st.sampled_from(list(VALID)))
    if draw(st.booleans()):
        return topic, inner.encode()
    key = draw(st.sampled_from(sorted(VALID[topic])))
    text = json.dumps({**VALID[topic], key: "@@"}).replace('"@@"', inner)
    return topic, text.encode()


@st.composite
def wrong_version(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid payload whose schema version is newer than ours or not a number."""
    topic = draw(st.sampled_from(list(VALID)))
    version = draw(
        st.integers(min_value=2)
        | st.text(max_size=5)
        | st.floats(allow_nan=False)
        | st.none()
        | st.booleans()
        | st.lists(st.integers(), max_size=2)
    )
    return topic, _dump({**VALID[topic], "v": version})


FAMILIES = {
    "random bytes": st.tuples(topic_names, st.binary(min_size=1, max_size=512)),
    "random json": random_json(),
    "wrong shape": wrong_shape(),
    "huge numbers": huge_numbers(),
    "deep nesting": deep_nesting(),
    "wrong version": wrong_version(),
}


def fuzz(rig: Rig, family: st.SearchStrategy[tuple[str, bytes]], examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(message=family)
    def publish(message: tuple[str, bytes]) -> None:
        rig.publish(*message)

    publish()
    rig.assert_still_works()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_malformed_payloads_on_every_down_topic_are_counted_and_harmless(
    rig: Rig, family: str
) -> None:
    fuzz(rig, FAMILIES[family], EXAMPLES)
    assert rig.sent_malformed > 0


@pytest.mark.soak
def test_soak_every_family_many_times(rig: Rig) -> None:
    fuzz(rig, st.one_of(*FAMILIES.values()), SOAK_EXAMPLES)


def test_a_burst_of_garbage_does_not_delay_a_valid_command(rig: Rig) -> None:
    for n in range(200):
        rig.hub.publish(topics.command(DEVICE), b"\x00garbage %d" % n)
    rig.sent_malformed += 200
    rig.assert_still_works()
