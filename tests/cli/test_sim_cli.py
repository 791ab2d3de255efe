"""`appliance sim ...` and the control socket, against real adapters and real simulators."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.core.devices import BarcodeScanned, CardTapped, DeviceHealth
from appliance.core.events import EventBus
from appliance.core.payment import PaymentRequest, PaymentTerminal
from appliance.core.scale import InMotion, Overload, StableWeight, Underload
from appliance.drivers.manager import DeviceManager, write_snapshot
from appliance.drivers.sim.control import (
    MAX_CONNECTIONS,
    Command,
    ControlServer,
    control_socket_path,
    lab_commands,
    send,
)
from appliance.drivers.sim.lab import SimLab
from appliance.errors import DeviceError
from tests.cli.conftest import WAIT_SECONDS, Cli, NotifySocket, Spawner, appliance_script

pytestmark = pytest.mark.usefixtures("no_machine_config")
COFFEE = "4006381333931"  # the demo catalog's ground coffee


def wait_until(done: Callable[[], bool], what: str, pump: EventBus | None = None) -> None:
    """Poll `done()` (delivering bus events when given one); fail after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        if pump is not None:
            pump.wait(0.05)
            pump.drain()
        else:
            time.sleep(0.05)


class Lab:
    """The simulator lab with the real adapters opened on it and its control socket."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.socket = control_socket_path(state / "appliance.db")
        self.bus = EventBus()
        self.sims = SimLab.start()
        self.devices = DeviceManager.build(self.sims.settings, overrides=self.sims.overrides)
        terminal: PaymentTerminal | None = self.devices.terminal
        assert terminal is not None and self.sims.terminal is not None
        self.terminal = terminal
        self.control = ControlServer(self.socket, lab_commands(self.sims))
        self.scans: list[BarcodeScanned] = []
        self.taps: list[CardTapped] = []
        self.bus.subscribe(BarcodeScanned, self.scans.append)
        self.bus.subscribe(CardTapped, self.taps.append)

    def open(self) -> None:
        """Open the devices, wait until each is up, start answering the socket."""
        self.devices.open_all(self.bus)
        self.wait_all_ok()
        self.control.open()

    def wait_all_ok(self) -> None:
        """Wait until every device reports ok."""
        wait_until(lambda: all(h.state == "ok" for h in self.devices.health()), "devices", self.bus)

    def reset(self) -> None:
        """Undo what a test did: paper in, drawer shut, scanner plugged, terminal approving."""
        sims = self.sims
        assert sims.printer and sims.drawer and sims.scanner
        sims.printer.set_paper_out(False)
        sims.drawer.shut()
        if not sims.scanner.plugged:
            sims.scanner.replug()
        assert sims.terminal is not None
        sims.terminal.script()  # nothing queued: the emulator approves
        assert sims.scale is not None
        sims.scale.put(0)
        self.wait_all_ok()
        self.scans.clear()
        self.taps.clear()

    def state_of(self, name: str) -> str:
        """One device's health state."""
        return self.devices[name].health.state

    def close(self) -> None:
        """Stop everything this lab started."""
        self.control.close()
        self.devices.close_all()
        self.sims.close()


@pytest.fixture(scope="module")
def shared_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab for the module: opening and closing nfcpy's udp link takes seconds."""
    opened = Lab(tmp_path_factory.mktemp("lab"))
    try:
        opened.open()
        yield opened
    finally:
        opened.close()


@pytest.fixture
def lab(shared_lab: Lab, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """The shared lab, reset, with `appliance sim --simulate` pointed at its socket."""
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(shared_lab.state))
    shared_lab.reset()
    return shared_lab


def sim(appliance: Cli, *args: str) -> dict[str, object]:
    """Run `appliance sim ...` in-process (no --config: the simulated defaults); its answer."""
    result = appliance("sim", *args, config=False)
    assert result.exit_code == 0, result.output
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_scan_and_tap_cross_the_real_wires(lab: Lab, appliance: Cli) -> None:
    """`sim scan` reaches the bus through the pty scanner; `sim tap` through nfcpy's udp link."""
    assert sim(appliance, "scan", COFFEE) == {"ok": True}
    assert sim(appliance, "tap", "04A1B2C3D4E5F6", "--text", "staff:anna") == {"ok": True}
    wait_until(lambda: bool(lab.scans and lab.taps), "the scan and the tap", lab.bus)

    assert lab.scans == [BarcodeScanned("scanner", COFFEE)]
    assert lab.taps[0].uid == "04A1B2C3D4E5F6"
    assert [r.text for r in lab.taps[0].records] == ["staff:anna"]


def test_paper_out_and_in_are_what_the_printer_reports(lab: Lab, appliance: Cli) -> None:
    """The adapter asks the printer over TCP (DLE EOT): out of paper, then loaded again."""
    printer = lab.devices.printer
    assert printer is not None

    sim(appliance, "paper-out")
    assert printer.status().paper_out is True
    sim(appliance, "paper-in")
    assert printer.status().paper_out is False


def test_drawer_open_and_close_move_the_sensor(lab: Lab, appliance: Cli) -> None:
    """`sim drawer open|close` drives the sensor pin the GpioDrawer reads."""
    drawer = lab.devices.drawer
    assert drawer is not None and drawer.is_open is False

    sim(appliance, "drawer", "open")
    assert drawer.is_open is True
    sim(appliance, "drawer", "close")
    assert drawer.is_open is False


def test_terminal_script_sets_the_next_answer(lab: Lab, appliance: Cli) -> None:
    """`sim terminal decline` makes the next payment declined, then approve again."""
    assert sim(appliance, "terminal", "decline") == {"ok": True, "terminal": "decline"}
    assert lab.terminal.pay(PaymentRequest(100, "EUR", "s-1/1")).outcome == "declined"
    sim(appliance, "terminal", "approve")
    assert lab.terminal.pay(PaymentRequest(100, "EUR", "s-1/2")).outcome == "approved"


def test_unplug_and_replug_the_scanner(lab: Lab, appliance: Cli) -> None:
    """The adapter sees the pty vanish (offline) and picks it up again (ok), then scans."""
    sim(appliance, "unplug")
    wait_until(lambda: lab.state_of("scanner") == "offline", "scanner offline", lab.bus)
    unplugged = appliance("sim", "scan", "12345670", config=False)
    assert unplugged.exit_code == 1
    assert "unplugged" in unplugged.output
    sim(appliance, "replug")
    wait_until(lambda: lab.state_of("scanner") == "ok", "scanner back", lab.bus)
    sim(appliance, "scan", "12345670")  # not the coffee: that one is still debounced
    wait_until(lambda: bool(lab.scans), "the scan", lab.bus)
    assert [scan.code for scan in lab.scans] == ["12345670"]


def test_weigh_and_scale_actions_are_what_the_adapter_reads(lab: Lab, appliance: Cli) -> None:
    """`sim weigh` loads the pty scale the SerialScale asks; `sim scale ...` plays its
    conditions until clear, and `sim scale zero` presses its zero key."""
    scale = lab.devices.scale
    assert scale is not None

    assert sim(appliance, "weigh", "1234") == {
        "ok": True,
        "scale": {"grams": 1234, "condition": "stable"},
    }
    assert scale.weigh() == StableWeight(1234)
    for action, reading in (("motion", InMotion()), ("overload", Overload())):
        answer = sim(appliance, "scale", action)
        assert answer["scale"] == {"grams": 1234, "condition": action}
        assert scale.weigh() == reading
    sim(appliance, "scale", "clear")
    assert scale.weigh() == StableWeight(1234)

    sim(appliance, "weigh", "0")
    sim(appliance, "scale", "underload")
    assert scale.weigh() == Underload()
    assert sim(appliance, "scale", "zero")["scale"] == {"grams": 0, "condition": "stable"}
    assert scale.weigh() == StableWeight(0)


def test_weigh_refuses_what_is_no_weight(lab: Lab, appliance: Cli) -> None:
    """Negative or fractional grams are refused by the CLI and by the socket alike."""
    assert appliance("sim", "weigh", "-5", config=False).exit_code == 2
    assert appliance("sim", "weigh", "1.5", config=False).exit_code == 2
    assert send(lab.socket, {"cmd": "weigh", "grams": -5})["ok"] is False
    assert send(lab.socket, {"cmd": "weigh", "grams": True})["ok"] is False
    assert send(lab.socket, {"cmd": "scale", "action": "tilt"})["ok"] is False


def test_refusals_are_answered_not_raised(lab: Lab) -> None:
    """Unknown commands, missing fields and bad UIDs get {"ok": false, "error": ...}."""
    path = lab.socket

    assert send(path, {"cmd": "fly"})["ok"] is False
    assert "code" in str(send(path, {"cmd": "scan"})["error"])
    assert "7 bytes" in str(send(path, {"cmd": "tap", "uid": "0102"})["error"])
    assert send(path, {"cmd": "terminal", "outcome": "refund"})["ok"] is False
    assert send(path, {"cmd": "scan", "code": COFFEE}) == {"ok": True}  # still serving


def test_connections_beyond_the_cap_are_refused_at_once_not_queued(lab: Lab) -> None:
    """Every slot held by a silent client: the next one hears "busy", and once the silent
    ones hang up, commands are answered again."""
    silent = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(MAX_CONNECTIONS)]
    try:
        for client in silent:
            client.connect(str(lab.socket))
        refused = send(lab.socket, {"cmd": "paper-in"})
    finally:
        for client in silent:
            client.close()

    assert refused["ok"] is False and "busy" in str(refused["error"])
    wait_until(lambda: send(lab.socket, {"cmd": "paper-in"}) == {"ok": True}, "a free slot")


def test_a_refused_command_exits_non_zero(lab: Lab, appliance: Cli) -> None:
    """The CLI turns a refusal into exit status 1 and the reason."""
    result = appliance("sim", "tap", "nothex", config=False)

    assert result.exit_code == 1
    assert "tap:" in result.output


def test_no_running_appliance_is_a_clear_error(appliance: Cli, clean_env: Path) -> None:
    """Nothing listens: exit 1, naming the socket and how to start one."""
    result = appliance("sim", "scan", COFFEE, config=False)

    assert result.exit_code == 1
    assert "no simulated appliance is running" in result.output
    assert str(clean_env / "sim.sock") in result.output


def test_a_second_control_socket_is_refused(lab: Lab) -> None:
    """Two simulated appliances on one state folder: the second cannot take the socket."""
    second = ControlServer(lab.socket, {})

    with pytest.raises(DeviceError, match="another simulated appliance"):
        second.open()
    assert send(second.path, {"cmd": "paper-in"}) == {"ok": True}


def test_commands_added_while_serving_are_answered(clean_env: Path) -> None:
    """A part started after the socket opened (the hub link's) adds its commands to it."""
    path = control_socket_path(clean_env / "appliance.db")
    with ControlServer(path, {}) as server:
        before = send(server.path, {"cmd": "help-calls"})
        server.add({"help-calls": Command("list", lambda _request: {"calls": []})})
        after = send(server.path, {"cmd": "help-calls"})

    assert before == {"ok": False, "error": "unknown command 'help-calls'; known: "}
    assert after == {"ok": True, "calls": []}


def test_a_stale_socket_is_replaced(clean_env: Path) -> None:
    """A socket file left by a crash does not keep the next run from listening."""
    path = control_socket_path(clean_env / "appliance.db")
    with ControlServer(path, {}):
        pass
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(path))  # bound, never listening: what a SIGKILL leaves
    with ControlServer(path, {}) as server:
        assert send(server.path, {"cmd": "x"})["ok"] is False
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not path.exists()


def _ready(messages: list[str]) -> bool:
    return any("READY=1" in message.splitlines() for message in messages)


def test_end_to_end_run_sim_status_and_selftest(
    notify_socket: NotifySocket, spawn: Spawner, clean_env: Path, appliance: Cli
) -> None:
    """A real `appliance run --simulate` process: scans sell, status shows device health,
    a separate selftest passes on its own lab, and the run stops cleanly."""
    process = spawn(
        [appliance_script(), "run", "--headless", "--simulate"],
        NOTIFY_SOCKET=str(notify_socket.path),
    )
    notify_socket.wait_for(_ready, process)

    def health() -> dict[str, str]:
        result = appliance("status", "--json", "--simulate", config=False)
        assert result.exit_code == 0, result.output
        devices = json.loads(result.stdout)["devices"]
        return {row["device"]: row["state"] for row in devices["health"]}

    everything = ("printer", "scanner", "drawer", "terminal", "scale", "nfc")
    everything_ok = {name: "ok" for name in everything}
    # NFC joins after READY=1 (nfcpy is slow to import); status shows it once it is up.
    wait_until(lambda: health() == everything_ok, "every device ok in status")

    assert sim(appliance, "scan", COFFEE) == {"ok": True}
    wait_until(lambda: "Ground coffee" in spawn.stderr(process), "the scan in the log")
    line = next(ln for ln in spawn.stderr(process).splitlines() if "Ground coffee" in ln)
    assert f"scanned {COFFEE} on scanner" in line
    assert sim(appliance, "scan", "12345670") == {"ok": True}  # valid EAN-8, not in the catalog
    wait_until(
        lambda: "scan 12345670 on scanner refused" in spawn.stderr(process), "the refusal logged"
    )
    assert sim(appliance, "tap", "04A1B2C3D4E5F6") == {"ok": True}
    wait_until(
        lambda: "card 04A1B2C3D4E5F6 tapped on nfc" in spawn.stderr(process), "the tap logged"
    )
    assert sim(appliance, "paper-out") == {"ok": True}
    assert sim(appliance, "terminal", "decline") == {"ok": True, "terminal": "decline"}

    selftest = subprocess.run(
        [appliance_script(), "selftest", "--non-interactive", "--simulate", "--json"],
        env={**os.environ, "NOTIFY_SOCKET": ""},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr
    report = json.loads(selftest.stdout)
    assert {d["device"]: d["verdict"] for d in report["devices"]} == {
        "printer": "pass",
        "scanner": "pass",
        "drawer": "pass",
        "nfc": "pass",
        "terminal": "pass",
        "scale": "pass",
    }
    # The selftest used its own simulators; the running appliance's are still answering.
    assert sim(appliance, "paper-in") == {"ok": True}

    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT_SECONDS) == 0, spawn.stderr(process)
    assert not (clean_env / "sim.sock").exists()
    assert set(health().values()) == {"offline"}  # the last snapshot: everything closed
    assert "Traceback" not in spawn.stderr(process)


def test_status_shows_device_health_with_its_age(appliance: Cli, clean_env: Path) -> None:
    """`appliance status` reads the snapshot a running appliance wrote, and says how old it is."""
    ok = DeviceHealth("printer", "printer", "ok", "", "127.0.0.1:9100")
    out = DeviceHealth("scanner", "scanner", "offline", "device unplugged", "/dev/serial/by-id/x")
    write_snapshot(clean_env / "devices.json", [ok, out], written_at=time.time() - 42)

    table = appliance("status", "--simulate", config=False)
    report = json.loads(appliance("status", "--simulate", "--json", config=False).stdout)

    assert table.exit_code == 0, table.output
    assert "device unplugged" in table.stdout
    assert "s ago" in table.stdout
    devices = report["devices"]
    assert [row["state"] for row in devices["health"]] == ["ok", "offline"]
    assert 42 <= devices["snapshot"]["age_seconds"] < 42 + WAIT_SECONDS
    assert devices["snapshot"]["pid"] == os.getpid()


def test_status_without_a_snapshot_says_so(appliance: Cli) -> None:
    """No appliance has run yet: no health, and the table says so."""
    report = json.loads(appliance("status", "--json").stdout)

    assert report["devices"] == {"configured": [], "snapshot": None, "health": []}
    assert "no health reported yet" in appliance("status").stdout


def test_the_cli_offers_exactly_the_lab_terminal_outcomes() -> None:
    """`sim terminal` lists what the lab can play, no more and no less."""
    from appliance.cli.sim import TERMINAL_OUTCOMES
    from appliance.drivers.sim.lab import TERMINAL_STEPS

    assert set(TERMINAL_OUTCOMES) == set(TERMINAL_STEPS)


def test_the_cli_offers_exactly_the_lab_scale_actions() -> None:
    """`sim scale` lists what the control socket can play, no more and no less."""
    from appliance.cli.sim import SCALE_ACTIONS as CLI_ACTIONS
    from appliance.drivers.sim.control import SCALE_ACTIONS

    assert list(CLI_ACTIONS) == list(SCALE_ACTIONS)


def test_a_busy_answer_is_read_even_when_the_server_closed_before_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full server answers "busy" and closes without reading: the client's write then
    fails (EPIPE), yet the answer waiting in its buffer is what it must report."""
    path = tmp_path / "sim.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    closed = threading.Event()
    sendall = socket.socket.sendall  # the server's own, not the client's delayed one

    def refuse() -> None:
        client, _ = server.accept()
        sendall(client, b'{"ok": false, "error": "busy: too many sim commands at once"}\n')
        client.close()
        closed.set()

    worker = threading.Thread(target=refuse)
    worker.start()

    def after_the_close(sock: socket.socket, data: bytes) -> None:
        assert closed.wait(WAIT_SECONDS)
        sendall(sock, data)

    monkeypatch.setattr(socket.socket, "sendall", after_the_close)
    try:
        answer = send(path, {"cmd": "paper-in"})
    finally:
        worker.join(WAIT_SECONDS)
        server.close()

    assert answer == {"ok": False, "error": "busy: too many sim commands at once"}
