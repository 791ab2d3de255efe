"""The signed bytes of a command, rebuilt by a second implementation with the standard library.

docs/protocol.md: the signature covers RFC 8785 (JCS) of the command with `signature` set to
"", and a signed command holds no floats, only integers within ±(2**53 - 1), and ASCII
object keys; there JCS equals `json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`. Here a verifier and a signer that use only `json` and `base64` (and
`cryptography` for Ed25519 itself) meet the hub's signer and the device's checks, the last
two through a real mosquitto with raw paho clients on the other end.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from appliance.core.events import EventBus
from appliance.mqtt import topics
from appliance.mqtt.commands import CommandHandler
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import Command, decode, encode
from appliance.mqtt.signing import canonical_bytes
from appliance.store.command_log import SqliteSeenCommands
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import migrate
from hub.cli_command import command_command
from hub.fleet_keys import generate_fleet_keys, load_fleet_key, new_command
from tests.broker import MosquittoBroker
from tests.mqtt.main_loop import start_main_loop

DEVICE = "kiosk-01"
WAIT = 10.0  # an upper bound on waiting for the broker, never asserted
MAX_SAFE = 2**53 - 1
KEY = Ed25519PrivateKey.generate()
NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
FINAL = {"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT"}

TRICKY = {
    "quotes": 'say "hi"',
    "backslash": "C:\\till\\new",
    "controls": "".join(chr(c) for c in range(0x20)),
    "slash_del": "a/b\x7f",
    "separators": "line\u2028para\u2029end",
    "emoji": "\U0001f600 \U0001f9fe",
    "non_ascii": "Grüße, café, 日本, \ufeff\uffff",
    "nested": {"z": [1, -MAX_SAFE, MAX_SAFE, None, True, False, {"b": "", "a": []}], "A": {}},
}


# --- a second implementation: the standard library only --------------------------------


def stdlib_signed_bytes(wire: bytes) -> bytes:
    """What a verifier rebuilds from the received JSON: sorted, compact, UTF-8."""
    command = json.loads(wire)
    command["signature"] = ""
    text = json.dumps(command, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def stdlib_verify(wire: bytes, key: Ed25519PublicKey) -> None:
    """Raise InvalidSignature unless `key` signed this command."""
    signature = base64.b64decode(json.loads(wire)["signature"], validate=True)
    key.verify(signature, stdlib_signed_bytes(wire))


def stdlib_sign(command: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """A signed command as a second hub would send it: keys in any order, ASCII escapes."""
    unsigned = {**command, "signature": ""}
    body = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signed = {**command, "signature": base64.b64encode(key.sign(body.encode())).decode()}
    # Another layout on the wire than the signed bytes: reversed keys, spaces, \u escapes.
    return json.dumps(dict(reversed(signed.items())), indent=1, ensure_ascii=True).encode()


def jcs(value: Any) -> str:
    """RFC 8785 written from its text for strings, safe integers, literals, arrays, objects."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)  # ECMAScript Number::toString of an integer within ±(2**53 - 1)
    if isinstance(value, str):
        short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
        short |= {"\f": "\\f", "\r": "\\r"}
        out = [short.get(c, f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in value]
        return '"' + "".join(out) + '"'
    if isinstance(value, list):
        return "[" + ",".join(jcs(item) for item in value) + "]"
    # Members sorted by the UTF-16 code units of their names (RFC 8785 §3.2.3).
    names = sorted(value, key=lambda name: name.encode("utf-16-be"))
    return "{" + ",".join(f"{jcs(name)}:{jcs(value[name])}" for name in names) + "}"


def hub_signed(args: dict[str, Any], name: Any = "set_config") -> bytes:
    """The wire bytes of a command the hub signed (what `fleet command` publishes)."""
    command = new_command(KEY, DEVICE, name, args, expires_in=timedelta(minutes=5), now=NOW)
    return encode(command)


# --- the claim, and the hub's signer against the stdlib verifier ------------------------


def test_the_canonical_bytes_of_a_command_are_exactly_these() -> None:
    wire = hub_signed({"text": 'q"\\/\x7f\u2028é\U0001f600\x00\x1f\n', "n": -5, "b": None})
    command_id = json.loads(wire)["id"]
    expected = (
        '{"args":{"b":null,"n":-5,"text":"q\\"\\\\/\x7f\u2028é\U0001f600\\u0000\\u001f\\n"},'
        '"device":"kiosk-01","expires_at":"2030-01-15T12:05:00+00:00",'
        f'"id":"{command_id}","issued_at":"2030-01-15T12:00:00+00:00",'
        '"name":"set_config","signature":"","v":1}'
    ).encode()
    assert stdlib_signed_bytes(wire) == expected
    assert canonical_bytes(decode(wire, Command)) == expected
    stdlib_verify(wire, KEY.public_key())


@pytest.mark.parametrize("field", sorted(TRICKY))
def test_the_stdlib_verifier_accepts_what_the_hub_signs(field: str) -> None:
    stdlib_verify(hub_signed({field: TRICKY[field]}), KEY.public_key())


def test_the_stdlib_verifier_accepts_every_tricky_value_at_once() -> None:
    stdlib_verify(hub_signed(dict(TRICKY)), KEY.public_key())


ascii_names = st.text(st.characters(max_codepoint=127), max_size=6)
domain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE, MAX_SAFE) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ascii_names, inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=150, deadline=None)
@given(args=st.dictionaries(ascii_names, domain_values, max_size=5))
def test_within_the_signed_domain_jcs_and_sorted_compact_json_are_the_same_bytes(
    args: dict[str, Any],
) -> None:
    wire = hub_signed(args)
    stdlib_verify(wire, KEY.public_key())
    assert stdlib_signed_bytes(wire) == jcs({**json.loads(wire), "signature": ""}).encode()


def test_outside_ascii_keys_jcs_and_code_point_order_part_ways() -> None:
    # Why keys are ASCII: UTF-16 puts U+1F600 (a surrogate pair, 0xD83D...) before U+FF61.
    names = {"\uff61": 1, "\U0001f600": 2}
    assert jcs(names) != json.dumps(
        names, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def test_the_device_side_bytes_equal_the_stdlib_ones() -> None:
    wire = hub_signed(dict(TRICKY))
    assert canonical_bytes(decode(wire, Command)) == stdlib_signed_bytes(wire)


# --- through the broker: a second hub, and a second device ------------------------------


class RawClient:
    """A raw paho MQTT v5 client on the plain listener; collects what arrives."""

    def __init__(self, broker: MosquittoBroker, client_id: str, *subscriptions: str) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(topic, 1) for topic in subscriptions])
        assert subscribed.wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1, waiting for the PUBACK."""
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT)

    def next(self, topic: str) -> bytes:
        """The payload of the next message on `topic` (others are skipped)."""
        while True:
            message = self.messages.get(timeout=WAIT)
            if message.topic == topic:
                return bytes(message.payload)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Appliance:
    """The real device side: link, command handler, and what its actions did."""

    key: Ed25519PrivateKey
    ran: list[dict[str, Any]]


@pytest.fixture
def appliance(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Appliance]:
    """A PahoHubLink and CommandHandler with a main loop, as `appliance run` wires them."""
    key = Ed25519PrivateKey.generate()
    db = open_database(tmp_path / "appliance.db")
    migrate(db, backup_dir=tmp_path / "backups")
    bus = EventBus()
    link = PahoHubLink(DEVICE, broker.host, broker.port, bus=bus, session_store=SessionStore(db))
    ran: list[dict[str, Any]] = []

    def apply(args: dict[str, Any]) -> str:
        ran.append(args)
        return "applied"

    clock = _Clock()
    handler = CommandHandler(
        DEVICE,
        key.public_key(),
        publish_update=lambda u: link.publish(topics.command_update(DEVICE), encode(u), qos=1),
        is_sale_open=lambda: False,
        actions={"set_config": apply},
        clock=clock,
        seen_store=SqliteSeenCommands(db, clock),
    )
    handler.route(link.dispatcher, bus)
    stop = threading.Event()
    loop = start_main_loop(bus, stop)
    watcher = RawClient(broker, "birth-watcher", topics.status(DEVICE))
    try:
        with handler, link:
            # The device subscribes before its birth: once the birth is here, commands land.
            while not json.loads(watcher.next(topics.status(DEVICE)))["online"]:
                pass
            yield Appliance(key, ran)
    finally:
        watcher.close()
        stop.set()
        loop.join()
        db.close()


class _Clock:
    """The device's wall clock at NOW (the commands here are issued then)."""

    def now(self) -> datetime:
        return NOW + timedelta(minutes=1)

    def monotonic(self) -> float:
        return time.monotonic()


def _states(hub: RawClient, command_id: str) -> list[tuple[str, str]]:
    """(state, reason) of each update for one command, up to the final one."""
    seen: list[tuple[str, str]] = []
    while not seen or seen[-1][0] not in FINAL:
        update = json.loads(hub.next(topics.command_update(DEVICE)))
        if update["id"] == command_id:
            seen.append((update["state"], update.get("reason", "")))
    return seen


def _command(args: dict[str, Any], command_id: str) -> dict[str, Any]:
    return {
        "v": 1,
        "id": command_id,
        "device": DEVICE,
        "name": "set_config",
        "args": args,
        "issued_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(minutes=5)).isoformat(),
    }


def test_a_command_signed_with_the_standard_library_runs_on_the_device(
    broker: MosquittoBroker, appliance: Appliance
) -> None:
    hub = RawClient(broker, "second-hub", topics.command_update(DEVICE))
    try:
        hub.publish(topics.command(DEVICE), stdlib_sign(_command(TRICKY, "c-1"), appliance.key))
        assert [state for state, _ in _states(hub, "c-1")] == ["QUEUED", "IN_PROGRESS", "SUCCEEDED"]
    finally:
        hub.close()
    assert [{k: v for k, v in args.items() if k != "command_id"} for args in appliance.ran] == [
        TRICKY
    ]


def test_a_signed_float_is_rejected_by_the_device_as_not_canonical(
    broker: MosquittoBroker, appliance: Appliance
) -> None:
    hub = RawClient(broker, "second-hub", topics.command_update(DEVICE))
    try:
        wire = stdlib_sign(_command({"screen": {"volume": 0.5}}, "c-2"), appliance.key)
        hub.publish(topics.command(DEVICE), wire)
        assert _states(hub, "c-2") == [
            ("REJECTED", "not canonical: args.screen.volume is a float (0.5)")
        ]
    finally:
        hub.close()
    assert appliance.ran == []


def test_the_fleet_cli_signs_what_a_stdlib_device_verifies(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    private, _ = generate_fleet_keys(tmp_path / "keys")
    public = load_fleet_key(private).public_key()
    device = RawClient(broker, DEVICE, topics.command(DEVICE))
    verified: list[str] = []

    def answer(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        # A device written from the protocol document: verify, then answer SUCCEEDED.
        stdlib_verify(bytes(message.payload), public)
        command = json.loads(message.payload)
        verified.append(command["args"]["text"])
        for state in ("QUEUED", "IN_PROGRESS", "SUCCEEDED"):
            update = {"v": 1, "id": command["id"], "state": state, "reason": ""}
            device.client.publish(topics.command_update(DEVICE), json.dumps(update), qos=1)

    device.client.on_message = answer
    text = 'q"\\/\x7f\u2028é\U0001f600\x01'
    try:
        result = CliRunner().invoke(
            command_command,
            [
                DEVICE,
                "set_config",
                "--arg",
                f"text={json.dumps(text)}",
                "--arg",
                'nested={"b": [1, null, true], "a": {"z": "\\u00e9"}}',
                "--fleet-key",
                str(private),
                *("--host", broker.host, "--port", str(broker.port), "--wait", str(WAIT)),
            ],
        )
    finally:
        device.close()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "SUCCEEDED"
    assert verified == [text]
