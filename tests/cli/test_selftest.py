"""`appliance selftest`: every device checked over its real transport, with reasons."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.core.events import EventBus
from appliance.drivers.manager import DeviceManager
from appliance.drivers.sim.lab import SELFTEST_GRAMS, SimLab
from appliance.drivers.sim.zvt_terminal import ZvtEmulator
from appliance.service.selftest import CheckResult, Selftest, SilentPrompter, run_selftest
from appliance.settings import simulated_settings
from tests.cli.conftest import CONFIG_TEMPLATE, WAIT_SECONDS, Cli

SHORT = 1.0  # seconds a check waits where the test expects nothing to happen


def free_closed_port() -> int:
    """A loopback TCP port nobody listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def emulator_port() -> Iterator[int]:
    """A ZVT terminal emulator on 127.0.0.1, as a configured terminal would be."""
    with ZvtEmulator() as emulator:
        yield emulator.serve_tcp()


class Bench:
    """The simulator lab (without NFC, which is slow to stop) with real adapters opened."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.lab = SimLab.start(nfc=False)
        self.devices = DeviceManager.build(self.lab.settings, overrides=self.lab.overrides)

    def open(self) -> None:
        """Open the devices and wait until each is up."""
        self.devices.open_all(self.bus)
        deadline = time.monotonic() + WAIT_SECONDS
        while not all(h.state == "ok" for h in self.devices.health()):
            assert time.monotonic() < deadline, self.devices.health()
            self.bus.wait(0.05)
            self.bus.drain()

    def run(
        self,
        *,
        interactive: bool = False,
        prompter: object = None,
        injectors: dict[str, Callable[[], None]] | None = None,
        timeout: float = WAIT_SECONDS,
    ) -> dict[str, CheckResult]:
        """Run the self-test; results by device name."""
        test = Selftest(
            self.devices,
            self.bus,
            timeout=timeout,
            interactive=interactive,
            prompter=prompter or SilentPrompter(),  # type: ignore[arg-type]
            injectors=self.lab.injectors() if injectors is None else injectors,
        )
        return {result.device: result for result in test.run()}

    def close(self) -> None:
        """Close the devices and stop the simulators."""
        self.devices.close_all()
        self.lab.close()


@pytest.fixture
def bench() -> Iterator[Bench]:
    """An opened bench, closed after the test."""
    opened = Bench()
    try:
        opened.open()
        yield opened
    finally:
        opened.close()


def verdicts(results: dict[str, CheckResult]) -> dict[str, str]:
    """Device name -> pass/fail/skip."""
    return {name: result.verdict for name, result in results.items()}


def test_every_simulated_device_passes(bench: Bench) -> None:
    """Printer prints, scanner reads the injected code, drawer opens, terminal answers,
    scale zeroes and weighs the injected load."""
    results = bench.run()

    assert verdicts(results) == {
        "printer": "pass",
        "scanner": "pass",
        "drawer": "pass",
        "terminal": "pass",
        "scale": "pass",
    }
    assert results["scanner"].reason == "read 4006381333931"
    assert results["scale"].reason == f"zeroed, weighed {SELFTEST_GRAMS} g"
    assert bench.lab.printer is not None and len(bench.lab.printer.jobs) == 1
    assert bench.lab.drawer is not None and bench.lab.drawer.kicks == 1


def test_out_of_paper_fails_the_printer_and_prints_nothing(bench: Bench) -> None:
    """The printer says it has no paper (DLE EOT): FAIL with that reason; no job sent."""
    assert bench.lab.printer is not None
    bench.lab.printer.set_paper_out(True)

    results = bench.run()

    assert results["printer"].verdict == "fail"
    assert results["printer"].reason == "out of paper"
    assert bench.lab.printer.jobs == []
    assert results["terminal"].verdict == "pass"  # one failure does not stop the others


def test_a_drawer_that_does_not_open_fails(bench: Bench) -> None:
    """Kicked, but the sensor never sees it open: FAIL naming the timeout."""
    assert bench.lab.drawer is not None
    bench.lab.drawer.auto_open_on_kick = False

    results = bench.run(timeout=SHORT)

    assert results["drawer"].verdict == "fail"
    assert "did not see it open" in results["drawer"].reason
    assert bench.lab.drawer.kicks == 1


def test_a_drawer_left_open_is_not_kicked_blind(bench: Bench) -> None:
    """Already open and nobody to close it: FAIL before kicking."""
    assert bench.lab.drawer is not None
    bench.lab.drawer.open()

    results = bench.run(timeout=SHORT)

    assert results["drawer"].verdict == "fail"
    assert "already open" in results["drawer"].reason
    assert bench.lab.drawer.kicks == 0


def test_the_terminal_is_checked_by_status_enquiry_and_never_charged(bench: Bench) -> None:
    """Selftest asks the ZVT terminal how it is (05 01); no Authorization (06 01) is sent."""
    emulator = bench.lab.terminal
    assert emulator is not None

    results = bench.run()

    assert results["terminal"].verdict == "pass"
    assert "2.14.15" in results["terminal"].reason  # the emulator's software version
    sent = [apdu.command for apdu in emulator.received]
    assert (0x05, 0x01) in sent
    assert (0x06, 0x01) not in sent
    assert emulator.book == []


def test_a_terminal_that_stopped_answering_fails_with_the_reason(bench: Bench) -> None:
    """The terminal's link is gone: the check fails and says why, it never passes."""
    emulator = bench.lab.terminal
    assert emulator is not None
    emulator.close()

    results = bench.run(timeout=SHORT)

    assert results["terminal"].verdict == "fail"
    assert results["terminal"].reason


def test_without_a_person_or_an_injector_a_scanner_is_skipped(bench: Bench) -> None:
    """Non-interactive on a scanner that nothing can drive: SKIP (never a silent PASS)."""
    results = bench.run(injectors={})

    assert results["scanner"].verdict == "skip"
    assert "needs a person" in results["scanner"].reason


def test_the_scale_is_zeroed_before_it_is_weighed(bench: Bench) -> None:
    """Z goes over the wire first, then W until the load reads: never a weight unzeroed."""
    scale = bench.lab.scale
    assert scale is not None

    results = bench.run()

    assert results["scale"].verdict == "pass"
    assert scale.requests[0] == b"Z"
    assert set(scale.requests[1:]) == {b"W"}


def test_a_scale_that_cannot_zero_fails_with_the_reason(bench: Bench) -> None:
    """A moving platter refuses the zero request: FAIL saying so, no weighing."""
    scale = bench.lab.scale
    assert scale is not None
    scale.motion()

    results = bench.run(timeout=SHORT)

    assert results["scale"].verdict == "fail"
    assert results["scale"].reason == "did not zero: the platter is moving"
    assert scale.requests == [b"Z"]


def test_a_load_that_never_settles_fails_the_scale(bench: Bench) -> None:
    """Zeroed, but the load put on it keeps moving: FAIL naming the timeout and the motion."""
    scale = bench.lab.scale
    assert scale is not None

    def moving_load() -> None:
        scale.put(SELFTEST_GRAMS)
        scale.motion()

    results = bench.run(injectors={"scale": moving_load}, timeout=SHORT)

    assert results["scale"].verdict == "fail"
    assert "no load weighed within 1 s: the platter is moving" in results["scale"].reason


def test_without_a_person_or_an_injector_the_empty_scale_is_zeroed_and_read(
    bench: Bench,
) -> None:
    """Non-interactive, nothing to load it: PASS on zero and an empty reading, saying so."""
    results = bench.run(injectors={})

    assert results["scale"].verdict == "pass"
    assert results["scale"].reason.startswith("zeroed, reads 0 g")


def test_interactive_asks_the_technician_to_scan(bench: Bench) -> None:
    """Interactive: the technician is told to scan, scans, and the scanner passes."""
    told: list[str] = []
    scanner = bench.lab.scanner
    assert scanner is not None

    class Technician:
        def tell(self, message: str) -> None:
            told.append(message)
            if "scan" in message:
                scanner.scan("96385074")

        def confirm(self, question: str) -> bool:
            return True

    results = bench.run(interactive=True, prompter=Technician(), injectors={})

    assert results["scanner"].verdict == "pass"
    assert results["scanner"].reason == "read 96385074"
    assert any("scanner" in message for message in told)


def test_a_lost_scanner_fails_with_the_reason(bench: Bench) -> None:
    """An unplugged scanner: FAIL, with what the adapter says."""
    assert bench.lab.scanner is not None
    bench.lab.scanner.unplug()
    deadline = time.monotonic() + WAIT_SECONDS
    while bench.devices["scanner"].health.state != "offline":
        assert time.monotonic() < deadline
        bench.bus.wait(0.05)
        bench.bus.drain()

    results = bench.run(timeout=SHORT)

    assert results["scanner"].verdict == "fail"
    assert results["scanner"].reason


def write_config(tmp_path: Path, devices: str) -> Path:
    """A config file with the given [devices.*] tables."""
    path = tmp_path / "selftest.toml"
    text = CONFIG_TEMPLATE.format(
        device_id="till-07", prefix="T7", database=tmp_path / "data" / "appliance.db"
    )
    path.write_text(text + devices, encoding="utf-8")
    return path


def test_cli_dead_printer_exits_non_zero_with_the_reason(
    appliance: Cli, tmp_path: Path, emulator_port: int
) -> None:
    """A configured printer that does not answer: exit 1, printer FAIL and why, JSON out."""
    config = write_config(
        tmp_path,
        f"""
[devices.receipt-printer]
kind = "escpos_printer"
host = "127.0.0.1"
port = {free_closed_port()}
timeout = 1.0

[devices.terminal]
kind = "zvt_terminal"
host = "127.0.0.1"
port = {emulator_port}
""",
    )

    result = appliance(
        "selftest",
        "--non-interactive",
        "--json",
        "--timeout",
        "2",
        "--config",
        str(config),
        config=False,
    )

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is False
    rows = {row["device"]: row for row in report["devices"]}
    assert rows["receipt-printer"]["verdict"] == "fail"
    assert "does not answer" in rows["receipt-printer"]["reason"]
    assert rows["receipt-printer"]["address"].startswith("127.0.0.1:")
    assert rows["terminal"]["verdict"] == "pass"


def test_cli_table_names_each_device_and_the_overall_result(appliance: Cli, tmp_path: Path) -> None:
    """The human table shows each device's result and reason, then FAIL."""
    config = write_config(
        tmp_path,
        f"""
[devices.receipt-printer]
kind = "escpos_printer"
host = "127.0.0.1"
port = {free_closed_port()}
timeout = 1.0
""",
    )

    result = appliance("selftest", "--non-interactive", "--config", str(config), config=False)

    assert result.exit_code == 1
    assert "receipt-printer" in result.stdout
    assert "FAIL" in result.stdout
    assert "does not answer" in result.stdout


def test_cli_no_devices_configured_passes_with_a_note(appliance: Cli) -> None:
    """Nothing configured (and not simulated): nothing to test, exit 0."""
    result = appliance("selftest", "--non-interactive")

    assert result.exit_code == 0, result.output
    assert "nothing to test" in result.stdout


@pytest.mark.usefixtures("no_machine_config")
def test_cli_simulated_lab_passes_every_device(appliance: Cli) -> None:
    """--simulate with no config: the whole simulator lab, NFC included, all PASS, exit 0."""
    result = appliance("selftest", "--non-interactive", "--simulate", "--json", config=False)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert {row["device"]: row["verdict"] for row in report["devices"]} == {
        "printer": "pass",
        "scanner": "pass",
        "drawer": "pass",
        "nfc": "pass",
        "terminal": "pass",
        "scale": "pass",
    }


def test_a_simulator_that_did_not_start_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A simulator missing from the lab is a FAIL with the reason, not a silent gap."""

    def broken(_lab: SimLab) -> None:
        raise OSError("udp port in use")

    monkeypatch.setattr(SimLab, "start_nfc", broken)
    settings = simulated_settings(tmp_path / "state")

    results = run_selftest(settings, simulate=True, interactive=False, timeout=WAIT_SECONDS)

    by_name = {r.device: r for r in results}
    assert by_name["nfc"].verdict == "fail"
    assert by_name["nfc"].reason == "simulator did not start: udp port in use"
    assert by_name["printer"].verdict == "pass"
