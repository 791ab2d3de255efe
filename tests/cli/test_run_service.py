"""`appliance run` as a real process talking to a stand-in for systemd's notify socket."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.service.demo import demo_products
from appliance.service.failure_policy import EX_CONFIG
from appliance.settings import simulated_settings
from tests.cli.conftest import (
    WAIT_SECONDS,
    NotifySocket,
    Spawner,
    appliance_script,
    catalog_at,
    file_digest,
    make_newer_schema,
)

# WatchdogSec=0.2 s: the service must ping every 0.1 s, so a few pings come quickly.
WATCHDOG_USEC = "200000"


def _count(messages: list[str], assignment: str) -> int:
    """How many datagrams carry `assignment` (e.g. READY=1) on one of their lines."""
    return sum(assignment in message.splitlines() for message in messages)


def _ready_then_watchdogs(messages: list[str], pings: int = 2) -> bool:
    if not _count(messages, "READY=1"):
        return False
    after_ready = messages[next(i for i, m in enumerate(messages) if "READY=1" in m) :]
    return _count(after_ready, "WATCHDOG=1") >= pings


def _serve_and_stop(
    process: subprocess.Popen[bytes], notify_socket: NotifySocket, spawn: Spawner
) -> list[str]:
    """READY=1, then watchdog pings, then SIGTERM gives STOPPING=1 and exit status 0."""
    messages = notify_socket.wait_for(_ready_then_watchdogs, process)
    first = messages[0].splitlines()
    assert first[0] == "READY=1", f"the first datagram must be READY=1: {messages!r}"

    process.send_signal(signal.SIGTERM)
    notify_socket.wait_for(lambda got: _count(got, "STOPPING=1") == 1, process)
    assert process.wait(WAIT_SECONDS) == 0, spawn.stderr(process)
    messages = notify_socket.drain()
    last_lines = messages[-1].splitlines()
    assert last_lines == ["STOPPING=1"], f"STOPPING=1 must come last: {messages!r}"
    assert _count(messages, "READY=1") == 1
    return messages


@pytest.mark.usefixtures("no_machine_config")
def test_simulated_run_tells_systemd_ready_alive_and_stopping(
    notify_socket: NotifySocket, spawn: Spawner, clean_env: Path
) -> None:
    """The console script, no config file: demo store seeded, READY, pings, clean stop."""
    process = spawn(
        [appliance_script(), "run", "--headless", "--simulate"],
        NOTIFY_SOCKET=str(notify_socket.path),
        WATCHDOG_USEC=WATCHDOG_USEC,
    )

    messages = _serve_and_stop(process, notify_socket, spawn)

    ready = next(m for m in messages if "READY=1" in m)
    demo_size = len(demo_products(simulated_settings(clean_env).store))
    assert f"{demo_size} products" in ready  # the STATUS= line tells systemctl what is loaded
    with catalog_at(clean_env / "appliance.db") as catalog:
        assert catalog.count() == demo_size
    assert "ready" in spawn.stderr(process)


@pytest.mark.usefixtures("no_machine_config")
def test_run_with_the_checkout_screen_is_ready_once_the_window_is_drawn(
    notify_socket: NotifySocket, spawn: Spawner, clean_env: Path
) -> None:
    """Without --headless the Kivy window opens (offscreen here); READY=1 follows its first
    frame, the watchdog is fed from Kivy's clock, and SIGTERM closes the window cleanly."""
    process = spawn(
        [appliance_script(), "run", "--simulate"],
        NOTIFY_SOCKET=str(notify_socket.path),
        WATCHDOG_USEC=WATCHDOG_USEC,
        APPLIANCE_OFFSCREEN="1",
    )

    messages = _serve_and_stop(process, notify_socket, spawn)

    ready = next(m for m in messages if "READY=1" in m)
    assert ready.rstrip().endswith("screen up"), ready
    assert "checkout screen ready (800x480)" in spawn.stderr(process)


def test_python_m_appliance_run_with_config_file(
    notify_socket: NotifySocket, spawn: Spawner, config: Path, db_path: Path
) -> None:
    """`python -m appliance run --config FILE` serves the configured store, not a demo."""
    process = spawn(
        [sys.executable, "-m", "appliance", "run", "--headless", "--config", config],
        NOTIFY_SOCKET=str(notify_socket.path),
        WATCHDOG_USEC=WATCHDOG_USEC,
    )

    messages = _serve_and_stop(process, notify_socket, spawn)

    assert "0 products" in next(m for m in messages if "READY=1" in m)
    with catalog_at(db_path) as catalog:  # migrated on start, nothing seeded without --simulate
        assert catalog.count() == 0
    assert "till-07" in spawn.stderr(process)


def test_bad_config_stops_before_anything_starts(
    notify_socket: NotifySocket, spawn: Spawner, tmp_path: Path, db_path: Path
) -> None:
    """A typo in the config: EX_CONFIG (no restart will fix it) naming the key; no READY=1."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'[device]\nid = "till-07"\n[store]\ncurency = "EUR"\n[database]\npath = "{db_path}"\n',
        encoding="utf-8",
    )

    process = spawn(
        [appliance_script(), "run", "--headless", "--config", bad],
        NOTIFY_SOCKET=str(notify_socket.path),
        WATCHDOG_USEC=WATCHDOG_USEC,
    )

    assert process.wait(WAIT_SECONDS) == EX_CONFIG  # RestartPreventExitStatus= in the unit
    stderr = spawn.stderr(process)
    assert "store.curency" in stderr
    assert str(bad) in stderr
    assert "Traceback" not in stderr
    assert not any("READY=1" in m for m in notify_socket.drain())
    assert not db_path.exists()


def test_newer_schema_refuses_to_start(
    notify_socket: NotifySocket, spawn: Spawner, config: Path, db_path: Path
) -> None:
    """A database from newer software: clear message, EX_CONFIG, no READY=1, untouched."""
    make_newer_schema(db_path)
    before = file_digest(db_path)

    process = spawn(
        [appliance_script(), "run", "--headless", "--config", config],
        NOTIFY_SOCKET=str(notify_socket.path),
        WATCHDOG_USEC=WATCHDOG_USEC,
    )

    assert process.wait(WAIT_SECONDS) == EX_CONFIG
    stderr = spawn.stderr(process)
    assert "schema version 99" in stderr
    assert "newer" in stderr
    assert "Traceback" not in stderr
    assert not any("READY=1" in m for m in notify_socket.drain())
    assert file_digest(db_path) == before
