"""A card payment in flight when systemd stops the appliance: a prompt stop, the attempt
kept in doubt, reported at the next start and settled there exactly once. Real processes."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from appliance.settings import DEFAULT_CONFIG_PATH
from tests.cli.conftest import WAIT_SECONDS, Cli, NotifySocket, Spawner, appliance_script
from tests.cli.test_sim_cli import COFFEE, sim, wait_until
from tests.service.test_unit_file import UNIT, parse, values

pytestmark = pytest.mark.skipif(
    DEFAULT_CONFIG_PATH.exists(), reason=f"{DEFAULT_CONFIG_PATH} exists here"
)
CHOCOLATE = "7613289024044"


def stop_timeout_seconds() -> float:
    """TimeoutStopSec= of the unit: after it, systemd kills the appliance."""
    [value] = values(parse(UNIT.read_text()), "Service", "TimeoutStopSec")
    return float(value)


def _readies(messages: list[str]) -> int:
    return sum("READY=1" in message.splitlines() for message in messages)


def _status(appliance: Cli) -> dict[str, Any]:
    result = appliance("status", "--json", "--simulate", config=False)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _in_doubt(appliance: Cli) -> list[dict[str, str]]:
    doubt: list[dict[str, str]] = _status(appliance).get("payments", {}).get("in_doubt", [])
    return doubt


def test_sigterm_during_a_card_payment_stops_in_time_and_the_next_start_resolves_it(
    notify_socket: NotifySocket, spawn: Spawner, clean_env: Path, appliance: Cli
) -> None:
    run = [appliance_script(), "run", "--headless", "--simulate"]
    first = spawn(run, NOTIFY_SOCKET=str(notify_socket.path))
    notify_socket.wait_for(lambda got: _readies(got) == 1, first)
    assert sim(appliance, "terminal", "hang") == {"ok": True, "terminal": "hang"}
    assert sim(appliance, "scan", COFFEE) == {"ok": True}
    wait_until(lambda: f"scanned {COFFEE} on scanner" in spawn.stderr(first), "the scan")

    # The terminal stays silent and refuses the abort: `sim pay card` waits, nothing else does.
    paying = subprocess.Popen(
        [str(appliance_script()), "sim", "pay", "card"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: [a["state"] for a in _in_doubt(appliance)] == ["pending"],
            "the attempt journalled before the terminal hears of it",
        )
        assert sim(appliance, "scan", CHOCOLATE) == {"ok": True}
        assert sim(appliance, "paper-out") == {"ok": True}
        assert paying.poll() is None, "the payment is still with the terminal"

        first.send_signal(signal.SIGTERM)
        assert first.wait(stop_timeout_seconds()) == 0, spawn.stderr(first)
        _out, err = paying.communicate(timeout=WAIT_SECONDS)
    finally:
        if paying.poll() is None:
            paying.kill()
            paying.wait(WAIT_SECONDS)
    assert paying.returncode == 1
    assert "stopping" in err
    [attempt] = _in_doubt(appliance)
    assert attempt["state"] == "pending"
    assert _status(appliance)["documents"]["count"] == 0
    assert "Traceback" not in spawn.stderr(first)

    # The next start asks the terminal before card is offered. This run's simulated
    # terminal is a new one with no transaction: the attempt was never charged.
    second = spawn(run, NOTIFY_SOCKET=str(notify_socket.path))
    notify_socket.wait_for(lambda got: _readies(got) == 2, second)
    wait_until(lambda: _in_doubt(appliance) == [], "recovery resolved the attempt")
    # The attempt is settled in the store before recovery logs its outcome: wait for the line.
    resolved = f"card payment {attempt['reference']} not_charged"
    wait_until(lambda: resolved in spawn.stderr(second), "recovery's log of the outcome")
    assert sim(appliance, "scan", COFFEE) == {"ok": True}
    wait_until(lambda: f"scanned {COFFEE} on scanner" in spawn.stderr(second), "the scan")
    paid = sim(appliance, "pay", "card")
    assert paid["ok"] is True, paid
    report = _status(appliance)
    assert report["documents"]["count"] == 1
    assert report["documents"]["last"]["receipt_number"] == paid["receipt"]
    second.send_signal(signal.SIGTERM)
    assert second.wait(stop_timeout_seconds()) == 0, spawn.stderr(second)
    assert "Traceback" not in spawn.stderr(second)
