"""Start-up: process start to READY=1 of `appliance run --headless --simulate`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import IO, Any

from bench import importtime
from bench.result import Row, Target
from bench.stats import median, summary_s

NAME = "startup"
READY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 10.0
POLL_S = 0.2
# Variables that would make the child read another config, feed a watchdog or log elsewhere.
_DROPPED_ENV = ("APPLIANCE_CONFIG", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")


@dataclass(frozen=True, slots=True)
class Sizes:
    """Measured runs of each command, after one warm-up run each."""

    runs: int


FULL = Sizes(runs=10)
QUICK = Sizes(runs=3)


@contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """An AF_UNIX datagram socket standing in for systemd's, bound in a short temp path."""
    folder = tempfile.mkdtemp(prefix="bench-notify-")
    path = os.path.join(folder, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        sock.settimeout(POLL_S)
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(POLL_S)


def _wait_ready(sock: socket.socket, process: subprocess.Popen[bytes]) -> float:
    """perf_counter() when a datagram with READY=1 arrives; fails if the process dies first."""
    deadline = perf_counter() + READY_TIMEOUT_S
    while perf_counter() < deadline:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode} before READY=1") from None
            continue
        if b"READY=1" in data.split(b"\n"):
            return perf_counter()
    raise RuntimeError(f"no READY=1 within {READY_TIMEOUT_S} s")


def time_to_ready(
    command: list[str], env: dict[str, str], sock: socket.socket, stderr: IO[bytes]
) -> float:
    """Seconds from just before Popen to READY=1; then SIGTERM, and the exit must be 0."""
    _drain(sock)
    started = perf_counter()
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
    )
    try:
        ready = _wait_ready(sock, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=EXIT_TIMEOUT_S)
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code} after SIGTERM")
    return ready - started


def time_to_exit(command: list[str], env: dict[str, str]) -> float:
    """Seconds from just before Popen to the process's exit (which must be 0)."""
    started = perf_counter()
    subprocess.run(command, env=env, stdin=subprocess.DEVNULL, check=True)
    return perf_counter() - started


def _environment(notify_path: str, state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["NOTIFY_SOCKET"] = notify_path
    env["APPLIANCE_STATE_DIR"] = str(state_dir)
    return env


def _import_offenders(
    python: str, env: dict[str, str], sock: socket.socket, workdir: Path
) -> dict[str, Any]:
    """`python -X importtime -m appliance run ...` up to READY=1, slowest imports first."""
    log = workdir / "importtime.txt"
    with log.open("wb") as stderr:
        command = [python, "-X", "importtime", "-m", "appliance", "run", "--headless"]
        time_to_ready([*command, "--simulate"], env, sock, stderr)
    return importtime.offenders(importtime.parse(log.read_text(errors="replace")))


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Time the service to READY=1 on an existing database, against bare interpreter starts."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    appliance = [str(Path(python).with_name("appliance")), "run", "--headless", "--simulate"]
    bare = [python, "-c", "pass"]
    cli_import = [python, "-c", "import appliance.cli.main"]
    ours_s: list[float] = []
    bare_s: list[float] = []
    import_s: list[float] = []
    with notify_socket() as (sock, path), (workdir / "stderr.txt").open("wb") as stderr:
        env = _environment(path, workdir / "state")
        # Warm-up: creates and migrates the simulated database and warms the page cache.
        time_to_ready(appliance, env, sock, stderr)
        time_to_exit(bare, env)
        time_to_exit(cli_import, env)
        for _ in range(sizes.runs):
            ours_s.append(time_to_ready(appliance, env, sock, stderr))
            bare_s.append(time_to_exit(bare, env))
            import_s.append(time_to_exit(cli_import, env))
        offenders = _import_offenders(python, env, sock, workdir)
    ours, bare_median, import_median = median(ours_s), median(bare_s), median(import_s)
    return [
        Row(
            NAME,
            "to READY=1",
            ours,
            "s",
            target=Target(0.5, at_most=True),
            baseline=bare_median,
            baseline_name="python -c pass, to exit",
            ratio=ours / bare_median,
            note=(
                "`appliance run --headless --simulate` from just before Popen to the READY=1 "
                "datagram on NOTIFY_SOCKET, existing migrated db in APPLIANCE_STATE_DIR, median "
                f"of {sizes.runs} after one warm-up; exits 0 on SIGTERM. Import offenders from "
                "`python -X importtime -m appliance run --headless --simulate`"
            ),
            details={
                "ours": summary_s(ours_s),
                "python_c_pass": summary_s(bare_s),
                "import_cli_main": summary_s(import_s),
                "import_offenders": offenders,
            },
        ),
        Row(
            NAME,
            "import appliance.cli.main",
            import_median,
            "s",
            baseline=bare_median,
            baseline_name="python -c pass, to exit",
            ratio=import_median / bare_median,
            note="`python -c 'import appliance.cli.main'` to exit, same interpreter (info)",
            details={"runs": summary_s(import_s)},
        ),
    ]
