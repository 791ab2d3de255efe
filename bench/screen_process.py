"""`appliance run --simulate` with its checkout window, as a child process the bench drives."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import IO

from appliance.settings import ScreenSettings
from bench import screen_app
from bench.startup import EXIT_TIMEOUT_S, _drain, _wait_ready

# Variables that would make the child read another config, feed a watchdog, log elsewhere
# or share the bench process's Kivy home.
_DROPPED_ENV = ("APPLIANCE_CONFIG", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")
_DROPPED_PREFIXES = ("KIVY_",)
PI_SCREEN = ScreenSettings(width=800, height=480)


def appliance_command(config: Path, *, headless: bool = False) -> list[str]:
    """`appliance run --simulate --config FILE`, with the window unless `headless`."""
    appliance = str(Path(sys.executable).with_name("appliance"))
    command = [appliance, "run", "--simulate", "--config", str(config)]
    return [*command, "--headless"] if headless else command


def write_config(workdir: Path, db_path: Path) -> Path:
    """A configuration file for a simulated store on `db_path`, at the Pi's 800x480."""
    path = workdir / "appliance.toml"
    path.write_text(screen_app.config_toml(db_path, PI_SCREEN), encoding="utf-8")
    return path


def child_environment(notify_path: str, state_dir: Path) -> dict[str, str]:
    """The bench's environment for the child: our notify socket, the window offscreen."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _DROPPED_ENV and not key.startswith(_DROPPED_PREFIXES)
    }
    env["NOTIFY_SOCKET"] = notify_path
    env["APPLIANCE_STATE_DIR"] = str(state_dir)
    env["APPLIANCE_OFFSCREEN"] = "1"  # real OpenGL through Mesa, no display needed
    return env


PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Looked up here, in the parent: between fork and exec the child only makes the call.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the bench dies (a timeout's SIGKILL included)."""
    _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM))


@dataclass(frozen=True, slots=True)
class Started:
    """A child that said READY=1, and how long that took from just before Popen."""

    process: subprocess.Popen[bytes]
    ready_s: float


@contextmanager
def started(
    command: list[str], env: dict[str, str], sock: socket.socket, stderr: IO[bytes]
) -> Iterator[Started]:
    """Run `command` until READY=1, yield it, then SIGTERM it; it must exit 0."""
    _drain(sock)
    begun = perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        preexec_fn=_die_with_parent,  # noqa: PLW1509  (one prctl call, no locks, no allocation)
    )
    try:
        ready = _wait_ready(sock, process)
        yield Started(process, ready - begun)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=EXIT_TIMEOUT_S)
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code} after SIGTERM")


def cpu_percent(pid: int, seconds: float) -> float:
    """The share of one CPU the process used over the next `seconds` (user + system)."""

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    before, started = ticks(), perf_counter()
    time.sleep(seconds)
    used = (ticks() - before) / os.sysconf("SC_CLK_TCK")
    return 100 * used / (perf_counter() - started)


def largest_mappings(pid: int, top: int = 8) -> list[dict[str, object]]:
    """The files (or [heap], anonymous) holding the most resident memory, from smaps."""
    by_name: dict[str, int] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else "[anonymous]"
        elif fields and fields[0] == "Rss:":
            by_name[name] = by_name.get(name, 0) + int(fields[1])
    largest = sorted(by_name.items(), key=lambda item: item[1], reverse=True)[:top]
    return [{"mapping": Path(n).name if n.startswith("/") else n, "kib": k} for n, k in largest]
