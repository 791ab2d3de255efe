"""Simulated appliances for the hub ingest benchmark: their batches, their pace, their acks.

No TLS here, so a device is who its topic says: a few paho clients publish SalesBatch
messages on the sales topics of many simulated devices, each device with its own sequence,
and one client receives every SalesAck through a wildcard subscription. A device's batch
counts as acknowledged by the first ack of that device whose upto_seq covers it (as an
appliance's outbox reads acks); its latency runs from its publish to that ack.

Two paces: a closed loop (every device sends its next batch when the previous one is
acknowledged, all starting at once: a throughput test whose latency is queueing), and an
open loop (batches leave on a schedule of their own, whatever the hub's answers, as
sales happen in shops).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns, sleep
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from appliance.core.ids import new_document_id, receipt_number
from appliance.errors import DecodeError
from appliance.mqtt import topics
from appliance.mqtt.client import paho_client
from appliance.mqtt.payloads import (
    HubState,
    SaleEnvelope,
    SalesAck,
    SalesBatch,
    decode,
    encode,
)
from appliance.store.documents import encode_document
from bench import fixtures
from bench.broker import BenchBroker
from bench.sale_data import build_drafts

PUBLISHERS = 4  # paho clients sharing the simulated devices
PRODUCTS = 30
DISTINCT_CARTS = 50  # sale drafts reused (with fresh ids) across devices
NS_PER_S = 1_000_000_000
SUBSCRIBE_S = 10.0

Messages = list[tuple[int, bytes]]  # (upto_seq, encoded SalesBatch), in sending order


def device_name(index: int) -> str:
    """The simulated device's id (and topic segment)."""
    return f"sim-{index:04d}"


def build_messages(batch_counts: Sequence[int], per_batch: int) -> dict[str, Messages]:
    """Per device (by index), that many SalesBatch messages of `per_batch` sales each."""
    products = [p for p in map(fixtures.product, range(PRODUCTS * 2)) if not p.age_restriction]
    drafts = build_drafts(products[:PRODUCTS], DISTINCT_CARTS)
    plan: dict[str, Messages] = {}
    for d, count in enumerate(batch_counts):
        device = device_name(d)
        messages = []
        for b in range(count):
            envelopes = []
            for seq in range(b * per_batch + 1, (b + 1) * per_batch + 1):
                draft = dataclasses.replace(
                    drafts[(d + seq) % len(drafts)], id=new_document_id(), device_id=device
                )
                sale = draft.seal(seq, receipt_number(f"S{d:04d}", seq))
                envelopes.append(
                    SaleEnvelope(
                        seq=seq, sale_id=sale.id, document=msgspec.Raw(encode_document(sale))
                    )
                )
            messages.append((envelopes[-1].seq, encode(SalesBatch(device=device, sales=envelopes))))
        plan[device] = messages
    return plan


@dataclass(frozen=True, slots=True)
class Schedule:
    """An open-loop plan: when (seconds from the start) which device sends its next batch."""

    sends: list[tuple[float, int]]  # (at_s, device index), by time
    devices: int
    per_batch: int
    seconds: float

    @classmethod
    def poisson(
        cls, *, devices: int, per_batch: int, sales_per_s: float, seconds: float, seed: int
    ) -> Schedule:
        """Each device sends at random (a Poisson process), all together `sales_per_s`."""
        rng = random.Random(seed)
        batches_per_s = sales_per_s / per_batch
        sends, at = [], rng.expovariate(batches_per_s)
        while at < seconds:
            # A Poisson stream split at random among the devices is one Poisson stream
            # per device, each at 1/devices of the rate.
            sends.append((at, rng.randrange(devices)))
            at += rng.expovariate(batches_per_s)
        return cls(sends, devices, per_batch, seconds)

    def batch_counts(self) -> list[int]:
        """How many batches each device sends."""
        counts = Counter(device for _, device in self.sends)
        return [counts[d] for d in range(self.devices)]

    @property
    def sales(self) -> int:
        """Sales the plan sends in all."""
        return len(self.sends) * self.per_batch


@dataclass(slots=True)
class _Device:
    """One simulated appliance: its messages, the next one to send, its batches in flight."""

    name: str
    client: mqtt.Client
    messages: Messages
    next: int = 0
    in_flight: dict[int, int] = field(default_factory=dict)  # upto_seq -> publish time (ns)


@dataclass(frozen=True, slots=True)
class FleetResult:
    """What the devices saw: each batch's ack latency, when the first went and the last came."""

    latencies_ns: list[int]
    start_ns: int
    last_ack_ns: int
    last_send_ns: int
    unexpected_acks: int


class Fleet:
    """Simulated devices on `PUBLISHERS` paho clients plus one client receiving every ack.

    Use as a context manager; `wait_online` before sending, then `run_closed_loop` or
    `run_open_loop` once.
    """

    def __init__(self, broker: BenchBroker, plan: dict[str, Messages]) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self._expected = sum(len(m) for m in plan.values())
        self._latencies: list[int] = []
        self._unexpected = 0
        self._last_ack_ns = 0
        self._last_send_ns = 0
        self._closed_loop = False
        self._done = threading.Event()
        self._online: set[str] = set()
        self._online_changed = threading.Condition(self._lock)
        self._listener = self._client("bench-acks")
        self._publishers = [self._client(f"bench-pub-{k}") for k in range(PUBLISHERS)]
        self._devices = {
            name: _Device(name, self._publishers[i % PUBLISHERS], messages)
            for i, (name, messages) in enumerate(plan.items())
        }
        self._listener.on_message = self._on_message
        subscribed = threading.Event()
        self._listener.on_subscribe = lambda *_args: subscribed.set()
        self._listener.subscribe([(topics.HUB_STATE, 1), (topics.sales_ack("+"), 1)])
        # Subscribed before any hub starts: each worker's online announcement is seen.
        if not subscribed.wait(SUBSCRIBE_S):
            self.__exit__()
            raise RuntimeError("the ack listener got no SUBACK")

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *_exc: object) -> None:
        for client in (*self._publishers, self._listener):
            client.disconnect()
            client.loop_stop()

    def _client(self, name: str) -> mqtt.Client:
        client = paho_client(name)
        client.connect(self._broker.host, self._broker.port, keepalive=60, clean_start=True)
        client.loop_start()
        return client

    def wait_online(self, workers: set[str], timeout: float) -> bool:
        """Block until every named hub worker has announced itself online."""
        with self._online_changed:
            return self._online_changed.wait_for(lambda: workers <= self._online, timeout)

    # --- the two paces -------------------------------------------------------------------

    def run_closed_loop(self, stall_s: float) -> FleetResult:
        """Every device sends its first batch now, and each next one on the previous ack."""
        self._closed_loop = True
        start = perf_counter_ns()
        for device in self._devices.values():
            self._send_next(device)
        self._wait_done(stall_s)
        return self._result(start)

    def run_open_loop(self, schedule: Schedule, stall_s: float) -> FleetResult:
        """Batches leave at their scheduled moments, acknowledged or not."""
        names = list(self._devices)
        start = perf_counter_ns()
        for at_s, index in schedule.sends:
            wait_ns = start + int(at_s * NS_PER_S) - perf_counter_ns()
            if wait_ns > 0:
                sleep(wait_ns / NS_PER_S)
            self._send_next(self._devices[names[index]])
        self._wait_done(stall_s)
        return self._result(start)

    # --- any thread ------------------------------------------------------------------------

    def _send_next(self, device: _Device) -> None:
        with self._lock:
            upto, payload = device.messages[device.next]
            device.next += 1
            now = perf_counter_ns()
            device.in_flight[upto] = now
            self._last_send_ns = now
        device.client.publish(topics.sales_up(device.name), payload, qos=1)

    def _wait_done(self, stall_s: float) -> None:
        """Block until every batch is acknowledged; raise when acks stop for `stall_s`."""
        seen = -1
        while not self._done.wait(stall_s):
            with self._lock:
                acked = len(self._latencies)
            if acked == seen:
                raise RuntimeError(
                    f"no acknowledgement for {stall_s:g} s: {acked} of {self._expected} "
                    f"batches acked, {self._unexpected} unexpected acks"
                )
            seen = acked

    def _result(self, start_ns: int) -> FleetResult:
        with self._lock:
            return FleetResult(
                list(self._latencies),
                start_ns,
                self._last_ack_ns,
                self._last_send_ns,
                self._unexpected,
            )

    # --- the listener's network thread ----------------------------------------------------

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = perf_counter_ns()
        if message.topic == topics.HUB_STATE:
            with contextlib.suppress(DecodeError):
                state = decode(bytes(message.payload), HubState)
                if state.online:
                    with self._online_changed:
                        self._online.add(state.hub_id)
                        self._online_changed.notify_all()
            return
        device = self._devices.get(topics.device_of(message.topic) or "")
        try:
            upto = decode(bytes(message.payload), SalesAck).upto_seq
        except DecodeError:
            upto = -1
        send_next = False
        with self._lock:
            covered = [] if device is None else [u for u in device.in_flight if u <= upto]
            if not covered:
                self._unexpected += 1  # a duplicate, or an ack below a gap (out of order)
                return
            assert device is not None
            for acked in covered:
                self._latencies.append(now - device.in_flight.pop(acked))
            self._last_ack_ns = now
            if len(self._latencies) == self._expected:
                self._done.set()
            send_next = self._closed_loop and device.next < len(device.messages)
        if send_next:
            self._send_next(device)
