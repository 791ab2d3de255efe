"""SerialScanner over a real pty: SimScanner writes bytes, pyserial reads the other end."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from appliance.core.devices import BarcodeScanned, DeviceHealthChanged, ScannerInputRejected
from appliance.core.events import EventBus
from appliance.device_settings import SerialScannerSettings
from appliance.drivers.registry import adapter_for
from appliance.drivers.scan_filter import Rejected
from appliance.drivers.serial_scanner import LineFramer, SerialScanner
from appliance.drivers.sim.scanner import SimScanner
from tests.drivers.bus_probe import WAIT, BusProbe
from tests.drivers.presentations import Script, ScriptedClock, the_issue_script


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _scanner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scanner-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test leaves no scanner thread and no open file descriptor behind."""
    before = _open_fds()
    yield
    assert not _scanner_threads()
    assert _open_fds() <= before


@pytest.fixture
def probe() -> BusProbe:
    """An event bus with a recorder."""
    return BusProbe(EventBus())


@pytest.fixture
def sim() -> Iterator[SimScanner]:
    """A plugged-in simulated scanner sending codes ended by CR."""
    with SimScanner() as scanner:
        yield scanner


class Clock:
    """A monotonic clock the test moves by hand (read from the reader thread)."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


ScannerFactory = Callable[..., SerialScanner]


@pytest.fixture
def open_scanner(probe: BusProbe) -> Iterator[ScannerFactory]:
    """Makes, opens and (at the end) closes SerialScanners on the probe's bus."""
    made: list[SerialScanner] = []

    def make(port: str, clock: Callable[[], float] | None = None, **options: Any) -> SerialScanner:
        settings = SerialScannerSettings(port=port, **options)
        scanner = SerialScanner("front", settings, clock=clock or time.monotonic)
        made.append(scanner)
        scanner.open(probe.bus)
        return scanner

    yield make
    for scanner in made:
        scanner.close()


def test_scan_arrives_as_barcode_scanned(
    sim: SimScanner, probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """A code written into the pty comes out of the bus as BarcodeScanned, health ok."""
    scanner = open_scanner(sim.port)
    health = probe.wait_health("ok").health
    assert health.address == sim.port
    assert health.kind == "scanner"
    sim.scan("4006381333931")
    assert probe.wait_scan("4006381333931") == BarcodeScanned("front", "4006381333931")
    assert scanner.health.state == "ok"


@pytest.mark.parametrize(
    ("terminator", "prefix", "suffix"),
    [
        ("\r", "", ""),
        ("\n", "", ""),
        ("\r\n", "", ""),
        ("\r", "]E0", ""),
        ("\n", "", "#"),
        ("\r\n", "S:", "/E"),
    ],
)
def test_framing_variants(
    probe: BusProbe,
    open_scanner: ScannerFactory,
    terminator: str,
    prefix: str,
    suffix: str,
) -> None:
    """Every terminator, with and without prefix/suffix, yields the bare code."""
    with SimScanner(terminator=terminator, prefix=prefix, suffix=suffix) as sim:
        open_scanner(sim.port, terminator=terminator, prefix=prefix, suffix=suffix)
        probe.wait_health("ok")
        sim.scan("ABC-123")
        sim.scan("0042")
        probe.wait_scan("0042")
        assert [e.code for e in probe.of(BarcodeScanned)] == ["ABC-123", "0042"]
        assert not probe.of(ScannerInputRejected)


def test_codes_in_one_write_and_split_across_writes(
    sim: SimScanner, probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """Two codes in one burst are two scans; a code split over several writes is one."""
    open_scanner(sim.port, hold_gap_ms=0)
    probe.wait_health("ok")
    sim.write_raw(b"111\r222\r33")
    probe.wait_scan("222")
    sim.write_raw(b"3")
    sim.write_raw(b"\r")
    probe.wait_scan("333")
    assert [e.code for e in probe.of(BarcodeScanned)] == ["111", "222", "333"]


def test_cr_lf_from_a_scanner_set_to_cr_is_tolerated(
    probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """A scanner sending CR LF to an adapter expecting CR still yields clean codes."""
    with SimScanner(terminator="\r\n") as sim:
        open_scanner(sim.port, terminator="\r")
        probe.wait_health("ok")
        sim.scan("111")
        sim.scan("222")
        sim.scan("333")
        probe.wait_scan("222")
        assert [e.code for e in probe.of(BarcodeScanned)] == ["111", "222"]
        assert not probe.of(ScannerInputRejected)


def test_each_presentation_counts_and_a_held_code_counts_once(
    sim: SimScanner, probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """Over the pty with the default hold gap: the same code sent at 0.35 s and at 0.6 s
    intervals counts once per presentation; a code read at 20 Hz for 2 s counts once.

    The scripted clock gives each read the instant the script says, so the verdicts do not
    depend on how fast this machine moves the bytes.
    """
    script = the_issue_script()
    clock = ScriptedClock(script.instants)
    open_scanner(sim.port, clock=clock)
    probe.wait_health("ok")
    for code in script.codes:
        sim.scan(code)
    last = script.expected[-1]
    probe.wait_scan(last)
    assert clock.calls == len(script.reads)  # every read reached the filter
    counted = [e.code for e in probe.of(BarcodeScanned)]
    assert counted == script.expected
    assert counted.count("4006381333931") == 6  # at 0.35 s
    assert counted.count("5012345678900") == 6  # at 0.6 s
    assert counted.count("7613289024044") == 2  # held for 2 s, then brought back once


def test_the_old_debounce_setting_is_read_and_ignored(
    sim: SimScanner,
    probe: BusProbe,
    open_scanner: ScannerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A configuration still saying debounce_ms = 800 loads, says so in the log, and the
    six yoghurts at 0.35 s still count six."""
    script = Script()
    script.present("4006381333931", times=6, every=0.35)
    script.present("0000000000017", times=1, every=0)
    with caplog.at_level(logging.WARNING, logger="appliance.drivers.scan_filter"):
        open_scanner(sim.port, clock=ScriptedClock(script.instants), debounce_ms=800)
    assert "debounce_ms = 800 is no longer used" in caplog.text
    probe.wait_health("ok")
    for code in script.codes:
        sim.scan(code)
    probe.wait_scan("0000000000017")
    assert [e.code for e in probe.of(BarcodeScanned)] == script.expected


def test_different_codes_inside_window_both_posted(
    sim: SimScanner, probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """Two different items scanned quickly are two scans."""
    open_scanner(sim.port, clock=Clock())
    probe.wait_health("ok")
    sim.scan("111")
    sim.scan("222")
    probe.wait_scan("222")
    assert [e.code for e in probe.of(BarcodeScanned)] == ["111", "222"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe\x00\r", "not ASCII"),
        (b"12\x0734\r", "not printable ASCII"),
        (b"9" * 200 + b"\r", "line longer than 128 bytes"),
        (b"\r", "empty line"),
        (b"4006381333931\r", "missing prefix 'S:'"),
    ],
    ids=["garbage", "control-char", "over-long", "empty", "no-prefix"],
)
def test_bad_input_is_rejected_and_the_next_scan_arrives(
    sim: SimScanner,
    probe: BusProbe,
    open_scanner: ScannerFactory,
    raw: bytes,
    reason: str,
) -> None:
    """Bad bytes post ScannerInputRejected with the reason; the scanner keeps going."""
    open_scanner(sim.port, prefix="S:")
    probe.wait_health("ok")
    sim.write_raw(raw)
    rejected = probe.wait_for(ScannerInputRejected)
    assert rejected.device == "front"
    assert reason in rejected.reason
    sim.write_raw(b"S:5012345678900\r")
    probe.wait_scan("5012345678900")
    assert len(probe.of(ScannerInputRejected)) == 1
    assert [e.code for e in probe.of(BarcodeScanned)] == ["5012345678900"]


def test_endless_line_is_rejected_once_and_discarded_to_the_terminator(
    sim: SimScanner, probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """A line that never ends is reported once; its tail is not taken for a code."""
    open_scanner(sim.port)
    probe.wait_health("ok")
    for _ in range(20):
        sim.write_raw(b"7" * 100)
    sim.write_raw(b"12345\r")  # the end of the over-long line, not a code
    sim.scan("888")
    probe.wait_scan("888")
    assert len(probe.of(ScannerInputRejected)) == 1
    assert "longer than 128" in probe.of(ScannerInputRejected)[0].reason
    assert [e.code for e in probe.of(BarcodeScanned)] == ["888"]


def test_unplug_goes_offline_and_replug_recovers_by_itself(
    sim: SimScanner, probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """Pulling the cable shows offline with a reason; plugging back in resumes scanning."""
    scanner = open_scanner(sim.port)
    probe.wait_health("ok")
    sim.scan("111")
    probe.wait_scan("111")
    mark = len(probe.events)
    sim.unplug()
    lost = probe.wait_health("offline", "device unplugged", after=mark).health
    assert lost.address == sim.port
    probe.wait_health("offline", f"{sim.port} not found", after=mark)
    mark = len(probe.events)
    sim.replug()
    probe.wait_health("ok", after=mark)
    sim.scan("222")
    probe.wait_scan("222")
    assert scanner.health.state == "ok"
    assert [e.code for e in probe.of(BarcodeScanned)] == ["111", "222"]


def test_missing_port_at_open_then_appears(probe: BusProbe, open_scanner: ScannerFactory) -> None:
    """Opening with the scanner absent is not an error: offline until it shows up."""
    with SimScanner(plugged=False) as sim:
        scanner = open_scanner(sim.port)
        offline = probe.wait_health("offline", "not found").health
        assert offline.reason == f"{sim.port} not found"
        assert scanner.health.state == "offline"
        sim.replug()
        probe.wait_health("ok")
        sim.scan("111")
        probe.wait_scan("111")


def test_a_partial_line_before_unplug_is_not_glued_to_the_next_scan(
    sim: SimScanner, probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """Half a code read before the cable came out is dropped, not prefixed to the next."""
    open_scanner(sim.port)
    probe.wait_health("ok")
    sim.write_raw(b"12")
    sim.scan("000")  # proves the "12" was read before the unplug
    probe.wait_scan("12000")
    sim.write_raw(b"34")
    sim.scan("999")
    probe.wait_scan("34999")
    sim.write_raw(b"56")
    # Let the reader take "56" in: wait until the pty has been drained.
    deadline = time.monotonic() + WAIT
    while _pending(sim) and time.monotonic() < deadline:
        time.sleep(0.01)
    mark = len(probe.events)
    sim.unplug()
    probe.wait_health("offline", after=mark)
    sim.replug()
    probe.wait_health("ok", after=mark)
    sim.scan("777")
    probe.wait_scan("777")
    assert [e.code for e in probe.of(BarcodeScanned)] == ["12000", "34999", "777"]


def _pending(sim: SimScanner) -> int:
    """Bytes written into the pty that the reader has not taken yet."""
    import fcntl
    import struct
    import termios

    fd = os.open(sim.pty_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    finally:
        os.close(fd)
    return int(struct.unpack("i", raw)[0])


def test_port_held_by_another_reader_is_offline_with_the_reason(
    sim: SimScanner, probe: BusProbe, open_scanner: ScannerFactory
) -> None:
    """A second reader of the same port is refused (exclusive lock) and says why."""
    first = open_scanner(sim.port)
    probe.wait_health("ok")
    second = SerialScanner("second", SerialScannerSettings(port=sim.port))
    try:
        second.open(probe.bus)
        health = probe.wait_for(
            DeviceHealthChanged, lambda e: e.health.device == "second" and "lock" in e.health.reason
        ).health
        assert health.state == "offline"
        assert health.reason.startswith(f"cannot open {sim.port}")
    finally:
        second.close()
    sim.scan("111")
    probe.wait_scan("111")
    assert first.health.state == "ok"
    assert [e.device for e in probe.of(BarcodeScanned)] == ["front"]


def test_close_twice_is_safe_and_stops_the_thread(sim: SimScanner, probe: BusProbe) -> None:
    """close() ends the reader thread and reports offline; a second close() does nothing."""
    scanner = SerialScanner("front", SerialScannerSettings(port=sim.port))
    with scanner:
        scanner.open(probe.bus)
        probe.wait_health("ok")
        assert _scanner_threads()
    assert not _scanner_threads()
    assert scanner.health.state == "offline"
    assert scanner.health.reason == "closed"
    scanner.close()
    assert scanner.health.reason == "closed"


def test_close_while_port_missing_stops_the_thread(probe: BusProbe) -> None:
    """A scanner retrying a missing port stops cleanly too."""
    with SimScanner(plugged=False) as sim:
        scanner = SerialScanner("front", SerialScannerSettings(port=sim.port))
        scanner.open(probe.bus)
        probe.wait_health("offline", "not found")
        scanner.close()
        assert not _scanner_threads()


def test_registry_builds_the_serial_scanner(sim: SimScanner) -> None:
    """The registry's "serial_scanner" kind is this adapter, made from its settings."""
    settings = SerialScannerSettings(port=sim.port, prefix="S:")
    scanner = adapter_for("serial_scanner").from_settings("front", settings, {})
    assert isinstance(scanner, SerialScanner)
    assert scanner.name == "front"
    assert scanner.address == sim.port
    assert scanner.health.state == "offline"


def test_framer_rejects_an_over_long_line_once() -> None:
    """LineFramer: an endless line is one rejection, then lines resume after its terminator."""
    framer = LineFramer(b"\r\n", max_length=8)
    out = list(framer.feed(b"123456789012"))
    out += list(framer.feed(b"345\r"))
    out += list(framer.feed(b"\nABC\r\n"))
    assert len(out) == 2
    assert isinstance(out[0], Rejected)
    assert out[1] == b"ABC"


def test_framer_finds_a_terminator_split_across_reads() -> None:
    """A CR LF split over two reads still ends the line."""
    framer = LineFramer(b"\r\n", max_length=8)
    assert list(framer.feed(b"ABC\r")) == []
    assert list(framer.feed(b"\nDEF\r\n")) == [b"ABC", b"DEF"]
