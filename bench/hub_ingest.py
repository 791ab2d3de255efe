"""Hub ingest: one `appliance-hub serve` process taking sales from hundreds of devices at once.

No TLS here, so a device is who its topic says: a few paho clients publish SalesBatch
messages on the sales topics of many simulated devices, each device with its own sequence
and its own flow (the next batch only after the previous one's SalesAck), and one client
receives every SalesAck through a wildcard subscription. The hub's sale table is polled
while it fills; ack latency is from publishing a batch to receiving its acknowledgement,
matched by device and upto_seq.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from appliance.core.ids import new_document_id, receipt_number
from appliance.mqtt import topics
from appliance.mqtt.client import paho_client
from appliance.mqtt.payloads import (
    DecodeError,
    HubState,
    SaleEnvelope,
    SalesAck,
    SalesBatch,
    decode,
    encode,
)
from appliance.store.documents import encode_document
from bench import fixtures
from bench.broker import BenchBroker, CpuMeter, running_broker
from bench.result import Row
from bench.sale_data import build_drafts
from bench.stats import percentile, summary_us
from bench.workdir import filesystem_of

NAME = "hub_ingest"
WORKER_ID = "bench-hub"
PUBLISHERS = 4  # paho clients sharing the simulated devices
PRODUCTS = 30
DISTINCT_CARTS = 50  # sale drafts reused (with fresh ids) across devices
POLL_S = 0.05  # how often the hub's sale table is counted
READY_S = 30.0
STALL_S = 30.0  # no acknowledgement for this long: the run failed, not a slow sample
STOP_S = 10.0
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
# Started like the console script, without needing it on PATH, from this checkout's code.
HUB_COMMAND = (sys.executable, "-c", "from hub.cli import main; main()", "serve")
SOURCE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Sizes:
    """Simulated devices, batches each device sends, and sales per batch."""

    devices: int
    batches: int
    per_batch: int

    @property
    def sales(self) -> int:
        """Sales the hub must end up holding."""
        return self.devices * self.batches * self.per_batch


FULL = Sizes(devices=500, batches=3, per_batch=20)
QUICK = Sizes(devices=50, batches=2, per_batch=20)


# --- what the devices send (built before timing) -----------------------------------------


def _device_name(index: int) -> str:
    return f"sim-{index:04d}"


def _batches(sizes: Sizes) -> dict[str, list[tuple[int, bytes]]]:
    """Per device, its encoded SalesBatch messages with the upto_seq each should be acked at."""
    products = [p for p in map(fixtures.product, range(PRODUCTS * 2)) if not p.age_restriction]
    drafts = build_drafts(products[:PRODUCTS], DISTINCT_CARTS)
    plan: dict[str, list[tuple[int, bytes]]] = {}
    for d in range(sizes.devices):
        device = _device_name(d)
        messages = []
        for b in range(sizes.batches):
            envelopes = []
            for seq in range(b * sizes.per_batch + 1, (b + 1) * sizes.per_batch + 1):
                draft = dataclasses.replace(
                    drafts[(d + seq) % len(drafts)], id=new_document_id(), device_id=device
                )
                sale = draft.seal(seq, receipt_number(f"S{d:04d}", seq))
                envelopes.append(
                    SaleEnvelope(
                        seq=seq, sale_id=sale.id, document=msgspec.Raw(encode_document(sale))
                    )
                )
            payload = encode(SalesBatch(device=device, sales=envelopes))
            messages.append((envelopes[-1].seq, payload))
        plan[device] = messages
    return plan


# --- the hub process ----------------------------------------------------------------------


@contextlib.contextmanager
def _hub_process(
    workdir: Path, broker: BenchBroker, database: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`appliance-hub serve` as a child process on the broker; SIGTERM by PID afterwards."""
    command = [
        *HUB_COMMAND,
        "--db",
        f"sqlite:///{database}",
        "--host",
        broker.host,
        "--port",
        str(broker.port),
        "--worker-id",
        WORKER_ID,
        "--log-level",
        "WARNING",
    ]
    path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
    log_path = workdir / "hub.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": path},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_S)


# --- the simulated fleet -------------------------------------------------------------------


@dataclass(slots=True)
class _Device:
    """One simulated appliance: its messages, the next one to send, when each was sent."""

    name: str
    client: mqtt.Client
    messages: list[tuple[int, bytes]]
    next: int = 0
    sent_ns: dict[int, int] = field(default_factory=dict)


class _Fleet:
    """Sends each device's next batch on its previous ack; records ack latencies."""

    def __init__(self, devices: list[_Device]) -> None:
        self._devices = {d.name: d for d in devices}
        self._expected = sum(len(d.messages) for d in devices)
        self._lock = threading.Lock()
        self.latencies_ns: list[int] = []
        self.unexpected = 0
        self.hub_online = threading.Event()
        self.done = threading.Event()
        self.last_ack_ns = 0

    def wait_done(self, stall_s: float) -> None:
        """Block until every batch is acknowledged; raise when acks stop for `stall_s`."""
        seen = -1
        while not self.done.wait(stall_s):
            with self._lock:
                acked = len(self.latencies_ns)
            if acked == seen:
                raise RuntimeError(
                    f"no acknowledgement for {stall_s:g} s: {acked} of {self._expected} "
                    f"batches acked, {self.unexpected} unexpected acks"
                )
            seen = acked

    def send_next(self, device: _Device) -> None:
        """Publish the device's next batch (main thread at first, then the ack thread)."""
        upto, payload = device.messages[device.next]
        device.next += 1
        device.sent_ns[upto] = perf_counter_ns()
        device.client.publish(topics.sales_up(device.name), payload, qos=1)

    def on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        """An ack (or the hub state) arrived on the listener's network thread."""
        now = perf_counter_ns()
        if message.topic == topics.HUB_STATE:
            with contextlib.suppress(DecodeError):
                state = decode(bytes(message.payload), HubState)
                if state.online and state.hub_id == WORKER_ID:
                    self.hub_online.set()
            return
        device = self._devices.get(topics.device_of(message.topic) or "")
        try:
            upto = decode(bytes(message.payload), SalesAck).upto_seq
        except DecodeError:
            upto = -1
        sent = device.sent_ns.pop(upto, None) if device is not None else None
        with self._lock:
            if device is None or sent is None:
                self.unexpected += 1
                return
            self.latencies_ns.append(now - sent)
            self.last_ack_ns = now
            if len(self.latencies_ns) == self._expected:
                self.done.set()
        if device.next < len(device.messages):
            self.send_next(device)


def _client(name: str, broker: BenchBroker) -> mqtt.Client:
    client = paho_client(name)
    client.connect(broker.host, broker.port, keepalive=60, clean_start=True)
    client.loop_start()
    return client


class _RowCounter:
    """Counts the hub's sale rows every POLL_S seconds in its own thread (read-only)."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self.samples: list[tuple[int, int]] = []  # (perf_counter_ns, rows)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="bench-row-counter", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop."""
        self._stop.set()
        self._thread.join(STOP_S)

    def _poll(self) -> None:
        connection = sqlite3.connect(f"file:{self._database}?mode=ro", uri=True)
        try:
            while True:
                stopping = self._stop.wait(POLL_S)
                rows = connection.execute("SELECT COUNT(*) FROM sale").fetchone()[0]
                self.samples.append((perf_counter_ns(), int(rows)))
                if stopping:
                    return
        finally:
            connection.close()


# --- the benchmark -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One ingest run: start, row samples, ack latencies, and the hub's final state."""

    start_ns: int
    samples: list[tuple[int, int]]
    latencies_ns: list[int]
    last_ack_ns: int
    unexpected_acks: int
    cpu_s: dict[str, float]


def _time_to(samples: list[tuple[int, int]], rows: int, start_ns: int) -> float:
    """Seconds from start until the first sample holding at least `rows` rows."""
    for at, count in samples:
        if count >= rows:
            return (at - start_ns) / NS_PER_S
    raise RuntimeError(f"the hub never held {rows} rows: {samples[-3:]}")


def measure(workdir: Path, sizes: Sizes) -> Outcome:
    """Start broker and hub, let every simulated device drain its batches, time it all."""
    plan = _batches(sizes)
    database = workdir / "hub.db"
    with running_broker(workdir / "broker") as broker:
        listener = _client("bench-acks", broker)
        publishers = [_client(f"bench-pub-{k}", broker) for k in range(PUBLISHERS)]
        devices = [
            _Device(name, publishers[i % PUBLISHERS], messages)
            for i, (name, messages) in enumerate(plan.items())
        ]
        fleet = _Fleet(devices)
        listener.on_message = fleet.on_message
        try:
            listener.subscribe([(topics.HUB_STATE, 1), (topics.sales_ack("+"), 1)])
            with _hub_process(workdir, broker, database) as hub:
                if not fleet.hub_online.wait(READY_S):
                    raise RuntimeError(f"hub not online: {_tail(workdir / 'hub.log')}")
                counter = _RowCounter(database)
                counter.start()
                gc.collect()
                cpu = CpuMeter({"hub": hub.pid, "broker": broker.pid})
                start = perf_counter_ns()
                for device in devices:
                    fleet.send_next(device)
                try:
                    fleet.wait_done(STALL_S)
                finally:
                    counter.stop()
                cpu_s = cpu.used()
        finally:
            for client in (*publishers, listener):
                client.disconnect()
                client.loop_stop()
    _check_stored(database, sizes)
    return Outcome(
        start, counter.samples, fleet.latencies_ns, fleet.last_ack_ns, fleet.unexpected, cpu_s
    )


def _check_stored(database: Path, sizes: Sizes) -> None:
    """Every device's every sale is in the hub once, and its progress is at the end."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows, devices = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT device) FROM sale"
        ).fetchone()
        done = connection.execute(
            "SELECT COUNT(*) FROM device_progress WHERE upto_seq = ?",
            (sizes.batches * sizes.per_batch,),
        ).fetchone()[0]
    finally:
        connection.close()
    if (rows, devices, done) != (sizes.sales, sizes.devices, sizes.devices):
        raise RuntimeError(f"hub holds {rows} sales of {devices} devices, {done} complete")


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Ingest from many simulated appliances at once: sales/s into the table, ack latency."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    outcome = measure(workdir, sizes)
    total_s = _time_to(outcome.samples, sizes.sales, outcome.start_ns)
    rate = sizes.sales / total_s
    low, high = round(sizes.sales * 0.1), round(sizes.sales * 0.9)
    steady_s = _time_to(outcome.samples, high, outcome.start_ns) - _time_to(
        outcome.samples, low, outcome.start_ns
    )
    latencies = outcome.latencies_ns
    setup = (
        f"{sizes.devices} simulated devices x {sizes.batches} batches x {sizes.per_batch} "
        f"sales ({sizes.sales} sales) over {PUBLISHERS} paho clients, one batch in flight per "
        "device (the next on its SalesAck); acks through one wildcard subscription. Hub = one "
        "`appliance-hub serve` child process, fresh SQLite db (WAL, synchronous=FULL), "
        "mosquitto on loopback, all on this machine (see cpus in the environment)."
    )
    details = {
        "devices": sizes.devices,
        "batches_per_device": sizes.batches,
        "sales_per_batch": sizes.per_batch,
        "sales": sizes.sales,
        "publisher_clients": PUBLISHERS,
        "seconds_to_all_rows": round(total_s, 3),
        "seconds_to_last_ack": round((outcome.last_ack_ns - outcome.start_ns) / NS_PER_S, 3),
        "steady_rate_10_to_90_pct": round((high - low) / steady_s) if steady_s > 0 else None,
        "ack_latency": summary_us(latencies),
        "unexpected_acks": outcome.unexpected_acks,
        "cpu_s_during_ingest": outcome.cpu_s,  # this_process = the simulated devices
        "hub_cpu_share": round(outcome.cpu_s["hub"] / total_s, 2),
        "row_samples": len(outcome.samples),
        "poll_s": POLL_S,
        "database_filesystem": filesystem_of(workdir),
    }
    return [
        Row(
            NAME,
            "rate",
            rate,
            "sales/s",
            note=f"{setup} Rate = sales / time until the polled sale table held them all.",
            details=details,
        ),
        Row(
            NAME,
            "p99 ack latency",
            percentile(latencies, 99) / NS_PER_MS,
            "ms",
            note=(
                f"{setup} Latency = publish of a batch to its SalesAck (matched by device "
                "and upto_seq); every device keeps the hub's queue full, so this is mostly "
                "queueing behind the other devices' batches."
            ),
            details={"ack_latency": details["ack_latency"], "batches": len(latencies)},
        ),
    ]
