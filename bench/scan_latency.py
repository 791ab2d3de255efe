"""Scan latency: bytes into a pty until BarcodeScanned is on the bus, against raw pyserial."""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Final

import serial

from appliance.core.devices import BarcodeScanned, DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.device_settings import SerialScannerSettings
from appliance.drivers.serial_scanner import SerialScanner
from appliance.drivers.sim.scanner import SimScanner
from bench.result import Row, Target
from bench.stats import percentile, summary_us
from bench.workdir import quiet_drivers

NAME = "scan_latency"
TERMINATOR: Final = "\r"
BAUDRATE = 9600
READ_TIMEOUT = 0.5  # the adapter's own read timeout, so both sides block the same way
WAIT_S = 5.0  # a scan not seen by then is an error, not a slow sample
WARMUP_PER_BLOCK = 20
NS_PER_MS = 1e6
NOTE = (
    "One scan at a time: a 14-byte frame (13-digit code + CR) written into a pty with "
    "SimScanner.scan (one os.write). t0 = perf_counter_ns just before that write (after it "
    "would race a reader on another core). Ours = SerialScanner (pyserial, LineFramer, "
    "ScanFilter with the default 200 ms hold gap, distinct codes) posting BarcodeScanned; t1 "
    "= when the main thread, blocked in EventBus.wait, delivers it to a subscriber. Raw = a "
    "thread blocked in pyserial read(max(1, in_waiting)) on the same pty and settings, "
    "splitting on CR; t1 = when it holds the whole frame. Blocks alternate ours/raw; each "
    "side reopens the port per block and warms up first."
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many alternating blocks, and timed scans per block for each side."""

    blocks: int
    per_block: int


FULL = Sizes(blocks=10, per_block=200)
QUICK = Sizes(blocks=2, per_block=100)


@dataclass(slots=True)
class Codes:
    """Distinct EAN-13-shaped codes, so none is taken for a re-read of a held code."""

    next_number: int = 4_000_000_000_000

    def take(self) -> str:
        """The next unused code."""
        self.next_number += 1
        return str(self.next_number)


def _time_ours(sim: SimScanner, codes: Codes, sizes: Sizes) -> list[int]:
    """Open the adapter, time one block of scans through it, close it."""
    bus = EventBus()
    arrived: list[tuple[int, str]] = []
    ready = threading.Event()
    bus.subscribe(BarcodeScanned, lambda e: arrived.append((perf_counter_ns(), e.code)))

    def on_health(event: DeviceHealthChanged) -> None:
        if event.health.state == "ok":
            ready.set()

    bus.subscribe(DeviceHealthChanged, on_health)
    settings = SerialScannerSettings(port=sim.port, baudrate=BAUDRATE, terminator=TERMINATOR)
    scanner = SerialScanner("bench", settings)
    scanner.open(bus)
    try:
        while not ready.is_set():
            if not bus.wait(WAIT_S):
                raise RuntimeError(f"scanner not ready: {scanner.health}")

        def scan_once(code: str) -> int:
            seen = len(arrived)
            t0 = perf_counter_ns()
            sim.scan(code)
            while len(arrived) == seen:
                if not bus.wait(WAIT_S):
                    raise RuntimeError(f"{code} never arrived ({scanner.health})")
            t1, got = arrived[-1]
            if got != code:
                raise RuntimeError(f"sent {code}, got {got}")
            return t1 - t0

        return _block(scan_once, codes, sizes)
    finally:
        scanner.close()


@contextlib.contextmanager
def _raw_reader(port: str) -> Iterator[queue.SimpleQueue[tuple[int, bytes]]]:
    """A thread blocked in pyserial's read, timestamping each complete frame."""
    frames: queue.SimpleQueue[tuple[int, bytes]] = queue.SimpleQueue()
    stop = threading.Event()
    link = serial.Serial(port, BAUDRATE, timeout=READ_TIMEOUT)
    terminator = TERMINATOR.encode("ascii")

    def read_loop() -> None:
        buffer = b""
        while not stop.is_set():
            buffer += link.read(max(1, link.in_waiting))
            while terminator in buffer:
                frame, _, buffer = buffer.partition(terminator)
                frames.put((perf_counter_ns(), frame))

    thread = threading.Thread(target=read_loop, name="bench-raw-serial", daemon=True)
    thread.start()
    try:
        yield frames
    finally:
        stop.set()
        link.cancel_read()
        thread.join(WAIT_S)
        link.close()


def _time_raw(sim: SimScanner, codes: Codes, sizes: Sizes) -> list[int]:
    """Time one block of scans read by a bare pyserial thread."""
    with _raw_reader(sim.port) as frames:

        def scan_once(code: str) -> int:
            t0 = perf_counter_ns()
            sim.scan(code)
            t1, frame = frames.get(timeout=WAIT_S)
            if frame != code.encode("ascii"):
                raise RuntimeError(f"sent {code}, read {frame!r}")
            return t1 - t0

        return _block(scan_once, codes, sizes)


def _block(scan_once: Callable[[str], int], codes: Codes, sizes: Sizes) -> list[int]:
    for _ in range(WARMUP_PER_BLOCK):
        scan_once(codes.take())
    gc.collect()
    return [scan_once(codes.take()) for _ in range(sizes.per_block)]


def measure(sizes: Sizes) -> tuple[list[int], list[int]]:
    """Alternate blocks of ours and raw on one simulated scanner; (ours, raw) in ns."""
    ours: list[int] = []
    raw: list[int] = []
    codes = Codes()
    with SimScanner(terminator=TERMINATOR) as sim:
        for block in range(sizes.blocks):
            # Alternate who goes first so neither side always runs on a warmer cache.
            if block % 2 == 0:
                ours += _time_ours(sim, codes, sizes)
                raw += _time_raw(sim, codes, sizes)
            else:
                raw += _time_raw(sim, codes, sizes)
                ours += _time_ours(sim, codes, sizes)
    return ours, raw


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Time scans end to end through SerialScanner and through a raw pyserial read loop."""
    sizes = QUICK if quick else FULL
    with quiet_drivers():
        ours, raw = measure(sizes)
    latency = {"ours_latency": summary_us(ours), "raw_latency": summary_us(raw)}
    details = {
        "scans_per_side": len(ours),
        "blocks": sizes.blocks,
        "per_block": sizes.per_block,
        "warmup_per_block": WARMUP_PER_BLOCK,
        **latency,
    }
    rows = []
    for metric, q, target in (
        ("p99 latency", 99, Target(2.0, at_most=True)),
        ("p50 latency", 50, None),
    ):
        mine = percentile(ours, q) / NS_PER_MS
        theirs = percentile(raw, q) / NS_PER_MS
        rows.append(
            Row(
                NAME,
                metric,
                mine,
                "ms",
                target=target,
                baseline=theirs,
                baseline_name=f"raw pyserial read loop p{q}",
                ratio=mine / theirs,
                note=NOTE,
                details=details,
            )
        )
    return rows
