"""DeviceManager: real adapters over real transports to simulators, built, opened and closed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.core.devices import BarcodeScanned, DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.device_settings import HardwareSettings, SerialScannerSettings, ZvtTerminalSettings
from appliance.drivers import registry
from appliance.drivers.base import DeviceBase
from appliance.drivers.manager import DeviceManager, read_snapshot, write_snapshot
from appliance.drivers.sim.scanner import SimScanner
from appliance.drivers.sim.zvt_terminal import ZvtEmulator
from appliance.drivers.zvt.terminal import ZvtTerminal

WAIT = 10.0  # generous: only bounds a hang, never asserted as a duration


def pump(bus: EventBus, done: Callable[[], bool], timeout: float = WAIT) -> None:
    """Deliver bus events (as the main loop does) until `done()` holds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out waiting on the bus"
        bus.wait(0.05)
        bus.drain()


def state_of(manager: DeviceManager, name: str) -> str:
    """The health state the manager reports for one device."""
    return next(h.state for h in manager.health() if h.device == name)


class ExplodingDevice(DeviceBase):
    """A device whose open fails outright (stands in for an adapter bug)."""

    kind = "printer"

    def _start(self) -> None:
        raise OSError("bus error on the printer port")

    def _stop(self) -> None:
        pass


@pytest.fixture
def sim_scanner() -> Iterator[SimScanner]:
    """A serial scanner simulator on a pty."""
    with SimScanner() as scanner:
        yield scanner


@pytest.fixture
def bus() -> EventBus:
    """The bus the devices post to."""
    return EventBus()


@pytest.fixture
def terminal_table() -> Iterator[ZvtTerminalSettings]:
    """A ZVT terminal table pointing at an emulator on 127.0.0.1."""
    with ZvtEmulator() as emulator:
        yield ZvtTerminalSettings(host="127.0.0.1", port=emulator.serve_tcp())


@pytest.fixture
def tables(
    sim_scanner: SimScanner, terminal_table: ZvtTerminalSettings
) -> dict[str, HardwareSettings]:
    """A scanner on the simulator's pty and a ZVT terminal, as a config would say."""
    return {
        "front-scanner": SerialScannerSettings(port=sim_scanner.port, hold_gap_ms=0),
        "terminal": terminal_table,
    }


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """Where the health snapshot goes."""
    return tmp_path / "data" / "devices.json"


@pytest.fixture
def manager(tables: dict[str, HardwareSettings], snapshot: Path) -> Iterator[DeviceManager]:
    """The manager over `tables`, closed after the test."""
    devices = DeviceManager.build(tables, snapshot_path=snapshot)
    yield devices
    devices.close_all()


def test_opens_real_adapters_and_a_scan_crosses_the_wire(
    manager: DeviceManager, bus: EventBus, sim_scanner: SimScanner
) -> None:
    """Built from settings, opened: the pty scanner comes up and its scan reaches the bus."""
    scans: list[BarcodeScanned] = []
    bus.subscribe(BarcodeScanned, scans.append)

    manager.open_all(bus)
    pump(bus, lambda: state_of(manager, "front-scanner") == "ok")
    pump(bus, lambda: state_of(manager, "terminal") == "ok")  # connected and registered
    sim_scanner.scan("4006381333931")
    pump(bus, lambda: bool(scans))

    assert scans == [BarcodeScanned("front-scanner", "4006381333931")]
    assert [h.state for h in manager.health()] == ["ok", "ok"]
    assert [d.name for d in manager.scanners] == ["front-scanner"]
    assert isinstance(manager.terminal, ZvtTerminal)
    assert manager.printer is None and manager.drawer is None and manager.card_readers == []


def test_close_all_closes_in_reverse_order_and_is_safe_twice(
    manager: DeviceManager, bus: EventBus
) -> None:
    """Last opened, first closed; a second close_all() does nothing."""
    manager.open_all(bus)
    pump(bus, lambda: state_of(manager, "front-scanner") == "ok")
    closed: list[str] = []
    bus.subscribe(
        DeviceHealthChanged,
        lambda e: closed.append(e.health.device) if e.health.reason == "closed" else None,
    )

    manager.close_all()
    manager.close_all()
    bus.drain()

    assert closed == ["terminal", "front-scanner"]
    assert {h.state for h in manager.health()} == {"offline"}


def test_a_device_that_fails_to_open_is_offline_and_the_others_work(
    tables: dict[str, HardwareSettings], bus: EventBus, sim_scanner: SimScanner
) -> None:
    """An exploding open() is reported offline with its reason; the scanner still scans."""
    broken = ExplodingDevice("receipt-printer", "192.0.2.10:9100")
    scans: list[BarcodeScanned] = []
    bus.subscribe(BarcodeScanned, scans.append)
    with DeviceManager.build(tables, overrides={"receipt-printer": broken}) as manager:
        manager.open_all(bus)  # must not raise
        pump(bus, lambda: state_of(manager, "front-scanner") == "ok")
        sim_scanner.scan("5000112548129")
        pump(bus, lambda: bool(scans))

        printer = next(h for h in manager.health() if h.device == "receipt-printer")
        assert printer.state == "offline"
        assert "bus error on the printer port" in printer.reason
        assert manager.printer is broken


def test_a_missing_port_is_offline_with_the_reason(
    bus: EventBus, tmp_path: Path, terminal_table: ZvtTerminalSettings
) -> None:
    """A scanner whose port does not exist is offline ("not found"), not an error."""
    tables: dict[str, HardwareSettings] = {
        "scanner": SerialScannerSettings(port=str(tmp_path / "by-id" / "gone")),
        "terminal": terminal_table,
    }
    with DeviceManager.build(tables) as manager:
        manager.open_all(bus)
        pump(bus, lambda: "not found" in manager.health()[0].reason)
        pump(bus, lambda: state_of(manager, "terminal") == "ok")

        assert state_of(manager, "scanner") == "offline"


def test_an_adapter_that_cannot_be_built_is_offline(
    tables: dict[str, HardwareSettings], bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver module that cannot be imported leaves that device offline, the rest built."""
    monkeypatch.setitem(registry.DRIVERS, "serial_scanner", "appliance.drivers.nowhere:Gone")

    with DeviceManager.build(tables) as manager:
        manager.open_all(bus)
        pump(bus, lambda: state_of(manager, "terminal") == "ok")  # the rest was built

        scanner = manager.health()[0]
        assert (scanner.device, scanner.kind, scanner.state) == (
            "front-scanner",
            "scanner",
            "offline",
        )
        assert "cannot be built" in scanner.reason


def test_health_changes_are_written_to_the_snapshot(
    manager: DeviceManager, bus: EventBus, sim_scanner: SimScanner, snapshot: Path
) -> None:
    """devices.json follows the devices: ok after opening, offline after an unplug."""

    def snapshot_state(name: str) -> str | None:
        data = read_snapshot(snapshot)
        if data is None:
            return None
        return next(d["state"] for d in data["devices"] if d["device"] == name)

    manager.open_all(bus)
    pump(bus, lambda: snapshot_state("front-scanner") == "ok")
    pump(bus, lambda: snapshot_state("terminal") == "ok")
    sim_scanner.unplug()
    pump(bus, lambda: snapshot_state("front-scanner") == "offline")

    data = read_snapshot(snapshot)
    assert data is not None
    assert [d["device"] for d in data["devices"]] == ["front-scanner", "terminal"]
    terminal = data["devices"][1]
    assert (terminal["device"], terminal["kind"], terminal["state"]) == (
        "terminal",
        "payment_terminal",
        "ok",
    )
    assert terminal["reason"].startswith("registered")
    assert terminal["address"].startswith("127.0.0.1:")
    assert 0 <= data["age_seconds"] < 3600
    manager.close_all()
    final = read_snapshot(snapshot)
    assert final is not None
    assert {d["reason"] for d in final["devices"]} == {"closed"}
    assert sorted(p.name for p in snapshot.parent.iterdir()) == ["devices.json"]


def test_snapshot_write_is_atomic(
    manager: DeviceManager, bus: EventBus, snapshot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails half-way leaves the previous snapshot whole and no temp file."""
    manager.open_all(bus)
    before = snapshot.read_text()

    def half_written(data: object, out: object, **_kw: object) -> None:
        out.write('{"written_at": ')  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", half_written)
    manager.write_snapshot()  # logged, not raised

    assert snapshot.read_text() == before
    assert sorted(p.name for p in snapshot.parent.iterdir()) == ["devices.json"]


def test_snapshot_age_is_reported(tmp_path: Path) -> None:
    """read_snapshot() gives the age against the clock it is handed; garbage reads as None."""
    path = tmp_path / "devices.json"
    write_snapshot(path, [], written_at=1000.0)

    data = read_snapshot(path, now=1012.5)

    assert data is not None and data["age_seconds"] == 12.5 and data["devices"] == []
    path.write_text("{not json")
    assert read_snapshot(path) is None
    assert read_snapshot(tmp_path / "missing.json") is None


def test_no_threads_are_left_behind(manager: DeviceManager, bus: EventBus) -> None:
    """After close_all() the scanner's worker and the terminal's connector are gone."""
    before = set(threading.enumerate())
    manager.open_all(bus)
    pump(bus, lambda: state_of(manager, "front-scanner") == "ok")
    pump(bus, lambda: state_of(manager, "terminal") == "ok")

    manager.close_all()

    # The emulator's own session threads are the simulator's, not the manager's.
    left = {t for t in threading.enumerate() if not t.name.startswith("zvt-emulator")}
    assert left <= before


def test_open_late_adds_a_device_from_another_thread(
    bus: EventBus, sim_scanner: SimScanner, snapshot: Path, terminal_table: ZvtTerminalSettings
) -> None:
    """A slow device opened after open_all(), from a start-up thread, joins the others."""
    tables: dict[str, HardwareSettings] = {"terminal": terminal_table}
    scans: list[BarcodeScanned] = []
    bus.subscribe(BarcodeScanned, scans.append)
    with DeviceManager.build(tables, snapshot_path=snapshot) as manager:
        with pytest.raises(RuntimeError):
            manager.open_late("late-scanner", SerialScannerSettings(port=sim_scanner.port))
        manager.open_all(bus)
        late = threading.Thread(
            target=manager.open_late,
            args=("late-scanner", SerialScannerSettings(port=sim_scanner.port, hold_gap_ms=0)),
        )
        late.start()
        late.join(WAIT)
        pump(bus, lambda: state_of(manager, "late-scanner") == "ok")
        sim_scanner.scan("96385074")
        pump(bus, lambda: bool(scans))

        assert [d.name for d in manager] == ["terminal", "late-scanner"]
        data = read_snapshot(snapshot)
        assert data is not None
        assert [d["device"] for d in data["devices"]] == ["terminal", "late-scanner"]
        with pytest.raises(ValueError, match="exists already"):
            manager.open_late("terminal", terminal_table)
    assert state_of(manager, "late-scanner") == "offline"  # closed with the others


def test_the_simulator_lab_gives_every_port_a_real_adapter(bus: EventBus) -> None:
    """The lab's tables and overrides build the real adapters, reachable by port family."""
    from appliance.drivers.escpos_printer import EscposPrinter
    from appliance.drivers.gpio_drawer import GpioDrawer
    from appliance.drivers.serial_scanner import SerialScanner
    from appliance.drivers.sim.lab import SimLab
    from appliance.drivers.zvt.terminal import ZvtTerminal

    with SimLab.start(nfc=False) as lab:
        manager = DeviceManager.build(lab.settings, overrides=lab.overrides)
        with manager:
            manager.open_all(bus)
            pump(bus, lambda: {h.state for h in manager.health()} == {"ok"})

            assert isinstance(manager.printer, EscposPrinter)
            assert isinstance(manager.drawer, GpioDrawer)
            assert isinstance(manager.terminal, ZvtTerminal)  # paying at the emulator's wire
            assert [type(s) for s in manager.scanners] == [SerialScanner]
            assert manager.card_readers == []
            assert lab.problems == {}
