"""PahoHubLink: the appliance's only MQTT client (paho-mqtt 2.x, MQTT v5).

Lifecycle (Sparkplug-like): every connect attempt takes the next durable session number
(bd_seq) and sets the Last Will `DeviceStatus(online=False, bd_seq=N)` (retained, QoS 1)
before CONNECT; once connected it publishes the birth `DeviceStatus(online=True,
bd_seq=N)` retained at QoS 0, subscribes to its down topics and the retained hub state. A
graceful close disconnects "with will message", so the retained status says offline
with the same N either way. The hub ignores a will whose bd_seq is older than the
last birth.

The broker session is not relied on (clean start every time): paho keeps in-flight QoS 1
state only in memory, so the outbox, not the session, makes sales effectively-once.

Threads: paho's network thread runs the callbacks. They only update the link's own
state record (under its lock), decode incoming messages through the Dispatcher and post
events; `publish` is safe from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from appliance import __version__
from appliance.core.clock import Clock, SystemClock
from appliance.core.closing import OpenClosing
from appliance.core.events import Event, EventBus
from appliance.errors import HubLinkError
from appliance.mqtt import topics
from appliance.mqtt.client import TlsFiles, paho_client
from appliance.mqtt.dispatch import Dispatcher
from appliance.mqtt.payloads import DeviceStatus, HubState, encode
from appliance.store.hub_session import SessionStore

log = logging.getLogger(__name__)

# Seconds paho waits before reconnecting: doubles per failure up to the max.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class LinkState:
    """Where the link stands; `session` is the bd_seq of the current or last connection."""

    connected: bool = False
    hub_online: bool = False
    session: int = 0

    @property
    def ready(self) -> bool:
        """Connected and the hub says it is online: the outbox may flush."""
        return self.connected and self.hub_online


@dataclass(frozen=True, slots=True)
class PublishCounts:
    """What became of this link's publishes, by the broker's answer."""

    # Sent (QoS 0) or acknowledged with a reason below 0x80. PUBACK 0x10 "No matching
    # subscribers" counts here: the broker took the message, nobody listened just then
    # (a command update or reported config while no hub runs); what matters to the data
    # is the hub's own answer, never the PUBACK.
    accepted: int = 0
    # PUBACK 0x80 and above (0x87 not authorised, ...): the broker dropped the message.
    refused: int = 0


@dataclass(frozen=True, slots=True)
class HubLinkChanged(Event):
    """The link connected, dropped, or the hub's retained state changed (at `at`, UTC)."""

    connected: bool
    hub_online: bool
    session: int
    reason: str
    at: datetime


StateWatcher = Callable[[LinkState], None]


class HubLink(Protocol):
    """What the uploader and telemetry need from a link; every method is thread-safe."""

    @property
    def device_id(self) -> str:
        """The device id used in topics."""
        ...

    @property
    def dispatcher(self) -> Dispatcher:
        """Routes incoming messages; register handlers before `open`."""
        ...

    @property
    def state(self) -> LinkState:
        """The current state."""
        ...

    def watch(self, watcher: StateWatcher) -> None:
        """Call `watcher` (on paho's thread: post, never block) on every state change."""
        ...

    def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool = False, expiry_s: int = 0
    ) -> bool:
        """Queue a message while connected; False (nothing queued) when not connected."""
        ...


def device_id_from_cert(cert: Path) -> str:
    """The CN of a PEM certificate: the identity the broker's ACL knows this device by."""
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as err:
        raise HubLinkError(f"cannot read device certificate {cert}: {err}") from err
    names = loaded.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise HubLinkError(f"device certificate {cert} has no CN")
    return str(names[0].value)


class PahoHubLink(OpenClosing):
    """The MQTT v5 link to the hub; a context manager, `close()` safe twice."""

    def __init__(
        self,
        device_id: str,
        host: str,
        port: int,
        *,
        tls: TlsFiles | None = None,
        bus: EventBus | None = None,
        session_store: SessionStore,
        keepalive: int = 30,
        clock: Clock | None = None,
        reconnect_min_s: int = RECONNECT_MIN_S,
        reconnect_max_s: int = RECONNECT_MAX_S,
        client_id: str | None = None,
        firmware: str = __version__,
        screen: Literal["", "kiosk", "staff"] = "",
    ) -> None:
        self._device = device_id
        self._screen: Literal["", "kiosk", "staff"] = screen  # told in the birth
        self._host, self._port = host, port
        self._bus = bus
        self._sessions = session_store
        self._keepalive = keepalive
        self._clock = clock or SystemClock()
        self._firmware = firmware
        self._dispatcher = Dispatcher(device_id, bus=bus)
        self._dispatcher.on(topics.HUB_STATE, self._hub_state, cleared=self._hub_state_cleared)
        self._state = LinkState()
        self._changed = threading.Condition()
        self._watchers: list[StateWatcher] = []
        self._attempt = 0  # bd_seq of the CONNECT in progress (paho's thread only)
        self._publishes = PublishCounts()  # under _changed
        self._opened = False
        self._closed = False
        # The device id as client id: the broker keeps one connection per device (a second
        # one takes the session over). Identity itself comes from the certificate CN.
        # The will is set per connect attempt (_on_pre_connect): it carries that attempt's bd_seq.
        self._client = paho_client(client_id or device_id, tls=tls)
        paho_log = logging.getLogger(f"{__name__}.paho")
        if not any(isinstance(f, _QuietAfterDisconnect) for f in paho_log.filters):
            paho_log.addFilter(_QuietAfterDisconnect())
        self._client.enable_logger(paho_log)
        self._client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        self._client.on_pre_connect = self._on_pre_connect
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish

    # --- the HubLink port ---

    @property
    def device_id(self) -> str:
        """The device id used in topics."""
        return self._device

    @property
    def dispatcher(self) -> Dispatcher:
        """Routes incoming messages; register handlers before `open`."""
        return self._dispatcher

    @property
    def state(self) -> LinkState:
        """The current state."""
        with self._changed:
            return self._state

    @property
    def publishes(self) -> PublishCounts:
        """How many publishes the broker took and refused so far."""
        with self._changed:
            return self._publishes

    def watch(self, watcher: StateWatcher) -> None:
        """Call `watcher` on paho's thread on every state change: it must only post."""
        with self._changed:
            self._watchers.append(watcher)

    def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool = False, expiry_s: int = 0
    ) -> bool:
        """Queue a message while connected (any thread); False, queueing nothing, otherwise.

        `expiry_s` sets the MQTT v5 message expiry interval (0: none).
        """
        if not self._client.is_connected():
            return False
        properties = None
        if expiry_s:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = expiry_s
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # --- lifecycle ---

    def open(self) -> None:
        """Start connecting in paho's thread; returns at once (the hub may be unreachable)."""
        if self._opened:
            return
        self._opened = True
        log.info("hub link %s -> %s:%d", self._device, self._host, self._port)
        self._client.connect_async(
            self._host, self._port, keepalive=self._keepalive, clean_start=True
        )
        self._client.loop_start()

    def close(self) -> None:
        """Disconnect sending the will (retained offline status) and stop paho's thread."""
        if self._closed or not self._opened:
            self._closed = True
            return
        self._closed = True
        if self._client.is_connected():
            # Reason 0x04 makes the broker publish the will: the retained status turns
            # offline with this session's bd_seq, exactly as after a crash.
            self._client.disconnect(
                reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            )
        else:
            self._client.disconnect()
        self._client.loop_stop()
        self._set(connected=False, hub_online=False, reason="closed")

    def wait_for(self, predicate: Callable[[LinkState], bool], timeout: float) -> bool:
        """Block until `predicate(state)` holds or `timeout` passes (tests, `--wait` CLIs)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._state), timeout)

    # --- paho callbacks (paho's network thread) ---

    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        try:
            self._attempt = self._sessions.advance()
        except Exception:
            # Never let a busy database stop the link; the number still has to grow.
            log.exception("cannot persist the mqtt session counter; using it unsaved")
            self._attempt = max(self._attempt, self.state.session) + 1
        will = DeviceStatus(
            device=self._device, online=False, bd_seq=self._attempt, firmware=self._firmware
        )
        client.will_set(topics.status(self._device), encode(will), qos=1, retain=True)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("hub broker refused the connection: %s", reason_code)
            self._set(connected=False, hub_online=False, reason=f"refused: {reason_code}")
            return
        client.subscribe(
            [(t, SubscribeOptions(qos=1)) for t in topics.device_subscriptions(self._device)]
        )
        birth = DeviceStatus(
            device=self._device,
            online=True,
            bd_seq=self._attempt,
            firmware=self._firmware,
            screen=self._screen,
        )
        # QoS 0, as Sparkplug's NBIRTH: paho re-sends a QoS 1 message still unacknowledged
        # when the link dropped after the next CONNECT, and an old birth arriving after
        # the new one would put an older session back as the retained status. A birth that
        # a dying connection loses is followed by that session's will, then a new birth.
        client.publish(topics.status(self._device), encode(birth), qos=0, retain=True)
        log.info("hub link up (session %d)", self._attempt)
        # The hub's state is unknown until its retained message arrives on this session.
        self._set(connected=True, hub_online=False, session=self._attempt, reason="connected")

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._set(connected=False, hub_online=False, reason="connect failed")

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if not self._closed:
            log.warning("hub link lost (session %d): %s", self._state.session, reason_code)
        self._set(connected=False, hub_online=False, reason=f"disconnected: {reason_code}")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)
        self._dispatcher.dispatch(topic, bytes(message.payload))

    def _on_publish(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        # is_failure is reason >= 0x80 (MQTT 5 §2.4): 0x10 "No matching subscribers" is
        # a success, so a QoS 1 message nobody was subscribed to is never an error here.
        failed = reason_code.is_failure
        with self._changed:
            counts = self._publishes
            self._publishes = replace(
                counts,
                accepted=counts.accepted + int(not failed),
                refused=counts.refused + int(failed),
            )
        if failed:
            # e.g. 0x87 not authorised: the broker ACL refuses a topic; the data stays queued.
            log.error("broker refused publish %d: %s", mid, reason_code)

    def _hub_state(self, state: HubState) -> None:
        if state.online != self.state.hub_online:
            log.info("hub %s is %s", state.hub_id or "?", "online" if state.online else "offline")
        self._set(hub_online=state.online, reason="hub online" if state.online else "hub offline")

    def _hub_state_cleared(self) -> None:
        self._set(hub_online=False, reason="hub state cleared")

    def _set(self, *, reason: str, **changes: Any) -> None:
        with self._changed:
            before = self._state
            if "hub_online" in changes and not changes.get("connected", before.connected):
                changes["hub_online"] = False  # a hub state heard while closing means nothing
            after = replace(before, **changes)
            if after == before:
                return
            self._state = after
            watchers = list(self._watchers)
            self._changed.notify_all()
        for watcher in watchers:
            try:
                watcher(after)
            except Exception:
                log.exception("link state watcher %r failed", watcher)
        if self._bus is not None:
            self._bus.post(
                HubLinkChanged(
                    after.connected, after.hub_online, after.session, reason, self._clock.now()
                )
            )


class _QuietAfterDisconnect(logging.Filter):
    """Drops the "Client is not connected" error paho's thread logs after every disconnect()."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for that one message."""
        return not str(record.msg).startswith("Client is not connected")
