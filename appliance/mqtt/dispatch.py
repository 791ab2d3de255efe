"""Routes every message the device receives to its handler, decoded strictly for its topic.

Runs on paho's network thread, so it never raises: a malformed message (bad bytes, a
wrong shape, a newer schema version) or an unexpected one (a topic the device does not
own) is logged, counted for the health telemetry and posted as MalformedMessage. Handlers
also run on paho's thread: they only decode-and-post (EventBus, a queue), never block.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from appliance.core.events import Event, EventBus
from appliance.errors import DecodeError
from appliance.mqtt import topics
from appliance.mqtt.payloads import (
    CardDebitAnswer,
    CatalogDelta,
    CatalogStatus,
    Command,
    DesiredConfig,
    HelpApprovalAnswer,
    HelpBoard,
    HubState,
    JournalAck,
    Payload,
    SalesAck,
    SnapshotChunk,
    decode,
)

log = logging.getLogger(__name__)

Decoder = Callable[[bytes], Payload]
Handler = Callable[[Any], None]

# A garbage flood must not fill the journal: the first few per topic are logged, then 1 in N.
LOG_FIRST = 10
LOG_EVERY = 100


@dataclass(frozen=True, slots=True)
class MalformedMessage(Event):
    """A message the device could not accept; `reason` says why (for logs and support)."""

    topic: str
    reason: str


@dataclass(frozen=True, slots=True)
class DispatchCounts:
    """What the dispatcher has seen since it was made."""

    delivered: int = 0
    malformed: int = 0  # bad bytes, wrong shape, newer version, or a topic not ours
    handler_errors: int = 0


class _CatalogKind(msgspec.Struct, frozen=True):
    """Just enough of a catalog message to pick its struct."""

    kind: Literal["delta", "snapshot", "status"]


def decode_catalog(data: bytes) -> CatalogDelta | SnapshotChunk | CatalogStatus:
    """A catalog message: a delta, a snapshot chunk or a status, told apart by `kind`."""
    try:
        kind = msgspec.json.decode(data, type=_CatalogKind).kind
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise DecodeError(f"catalog: {err}") from err
    if kind == "delta":
        return decode(data, CatalogDelta)
    if kind == "status":
        return decode(data, CatalogStatus)
    return decode(data, SnapshotChunk)


def down_decoders(device: str) -> dict[str, Decoder]:
    """Every topic a device receives, with its strict decoder."""
    return {
        topics.HUB_STATE: lambda data: decode(data, HubState),
        topics.sales_ack(device): lambda data: decode(data, SalesAck),
        topics.journal_ack(device): lambda data: decode(data, JournalAck),
        topics.catalog_down(device): decode_catalog,
        topics.command(device): lambda data: decode(data, Command),
        topics.config_desired(device): lambda data: decode(data, DesiredConfig),
        topics.help_board(device): lambda data: decode(data, HelpBoard),
        topics.help_approval_answer(device): lambda data: decode(data, HelpApprovalAnswer),
        topics.card_debit_answer(device): lambda data: decode(data, CardDebitAnswer),
    }


@dataclass(frozen=True, slots=True)
class _Route:
    handler: Handler
    cleared: Callable[[], None] | None


class Dispatcher:
    """Decodes and routes; `on` before the link connects, `dispatch` from paho's thread."""

    def __init__(
        self,
        device: str,
        *,
        bus: EventBus | None = None,
        decoders: Mapping[str, Decoder] | None = None,
    ) -> None:
        self._decoders = dict(decoders if decoders is not None else down_decoders(device))
        self._routes: dict[str, _Route] = {}
        self._bus = bus
        self._lock = threading.Lock()
        self._counts = DispatchCounts()
        self._malformed_by_topic: dict[str, int] = {}

    def on(
        self, topic: str, handler: Handler, *, cleared: Callable[[], None] | None = None
    ) -> None:
        """Send valid payloads on `topic` to `handler`, empty (retained-clear) ones to `cleared`."""
        if topic not in self._decoders:
            raise ValueError(f"{topic} is not a topic this device receives")
        self._routes[topic] = _Route(handler, cleared)

    def counts(self) -> DispatchCounts:
        """A snapshot of the counters; thread-safe."""
        with self._lock:
            return self._counts

    @property
    def malformed(self) -> int:
        """Malformed and unexpected messages so far (the health telemetry's figure)."""
        return self.counts().malformed

    def dispatch(self, topic: str, data: bytes) -> bool:
        """Decode and deliver one message; True when a handler took it. Never raises."""
        decoder = self._decoders.get(topic)
        if decoder is None:
            self._reject(topic, "unexpected topic")
            return False
        route = self._routes.get(topic)
        if not data:
            # A zero-length message clears a retained one: the sender's way of saying "none".
            return self._call(topic, route.cleared if route else None)
        try:
            payload = decoder(data)
        except DecodeError as err:
            self._reject(topic, str(err))
            return False
        except Exception as err:  # a decoder bug must not reach paho either
            self._reject(topic, f"undecodable: {err!r}")
            return False
        if route is None:
            log.debug("no handler for %s; %s ignored", topic, type(payload).__name__)
            return False
        return self._call(topic, lambda: route.handler(payload))

    def _call(self, topic: str, action: Callable[[], None] | None) -> bool:
        if action is None:
            return False
        try:
            action()
        except Exception:
            log.exception("handler for %s failed", topic)
            self._bump(handler_errors=1)
            return False
        self._bump(delivered=1)
        return True

    def _reject(self, topic: str, reason: str) -> None:
        # Unexpected topics share one tally, so random topic names cannot grow the dict.
        key = topic if topic in self._decoders else "*"
        with self._lock:
            seen = self._malformed_by_topic.get(key, 0) + 1
            self._malformed_by_topic[key] = seen
        self._bump(malformed=1)
        if seen <= LOG_FIRST or seen % LOG_EVERY == 0:
            log.warning("malformed message #%d on %s: %s", seen, topic, reason[:300])
        if self._bus is not None:
            self._bus.post(MalformedMessage(topic, reason[:300]))

    def _bump(self, *, delivered: int = 0, malformed: int = 0, handler_errors: int = 0) -> None:
        with self._lock:
            now = self._counts
            self._counts = DispatchCounts(
                now.delivered + delivered,
                now.malformed + malformed,
                now.handler_errors + handler_errors,
            )
