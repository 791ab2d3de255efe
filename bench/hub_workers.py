"""`appliance-hub serve` worker processes for the benchmarks, and what they hold and use.

Workers share the device traffic through the broker's shared subscriptions, as in a
deployment; each is a child process started like the console script, stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.broker import BenchBroker, cpu_seconds

# `appliance-hub serve` without needing it on PATH, from this checkout's code: the same
# command, without the import of the web side the other subcommands need (seconds of
# start-up per worker here, nothing of the ingest).
HUB_COMMAND = (sys.executable, "-m", "hub.cli_serve")
SOURCE_ROOT = Path(__file__).resolve().parents[1]
STOP_S = 10.0
POLL_S = 0.05  # how often the hub's sale table is counted


def worker_ids(count: int) -> list[str]:
    """The ids of `count` bench workers."""
    return [f"bench-hub-{n}" for n in range(1, count + 1)]


@contextlib.contextmanager
def hub_workers(
    workdir: Path, broker: BenchBroker, db_url: str, count: int
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`count` workers on one database and broker, by worker id; SIGTERM by PID afterwards."""
    path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
    workdir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for worker in worker_ids(count):
            command = [
                *HUB_COMMAND,
                *("--db", db_url, "--host", broker.host, "--port", str(broker.port)),
                *("--worker-id", worker, "--log-level", "WARNING"),
            ]
            with (workdir / f"{worker}.log").open("wb") as log_file:
                processes[worker] = subprocess.Popen(
                    command,
                    cwd=workdir,
                    env={**os.environ, "PYTHONPATH": path},
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
        yield processes
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_S)


def log_tails(workdir: Path) -> str:
    """The end of each worker's log, for an error message."""
    tails = []
    for log in sorted(workdir.glob("bench-hub-*.log")):
        with contextlib.suppress(OSError):
            tails.append(f"{log.name}: {log.read_text(errors='replace')[-1500:]}")
    return "\n".join(tails)


def tree_cpu_seconds(pid: int | None) -> float:
    """CPU seconds of a process and its live children (PostgreSQL's sessions), plus the
    children it has already reaped."""
    if pid is None:
        return 0.0
    total = cpu_seconds(pid)
    for child in _children(pid):
        total += cpu_seconds(child)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return total
    return total + (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return found


class CpuUse:
    """CPU seconds used from construction on, per named reading (a callable per name)."""

    def __init__(self, readings: dict[str, Callable[[], float]]) -> None:
        self._readings = {**readings, "this_process": time.process_time}
        self._start = {name: read() for name, read in self._readings.items()}

    def used(self) -> dict[str, float]:
        """CPU seconds each used since construction; `this_process` = the simulated devices."""
        return {name: round(read() - self._start[name], 3) for name, read in self._readings.items()}


Count = Callable[[], int]


def sqlite_counter(database: Path) -> tuple[Count, Callable[[], None]]:
    """Counting a SQLite hub's sales (read-only), and closing that connection."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, check_same_thread=False)

    def count() -> int:
        return int(connection.execute("SELECT COUNT(*) FROM sale").fetchone()[0])

    return count, connection.close


def postgres_counter(url: str) -> tuple[Count, Callable[[], None]]:
    """Counting a PostgreSQL hub's sales, and closing that connection."""
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True

    def count() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM sale")
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    return count, connection.close


class RowCounter:
    """Counts the hub's sale rows every POLL_S seconds in its own thread (read-only)."""

    def __init__(self, count: Count) -> None:
        self._count = count
        self.samples: list[tuple[int, int]] = []  # (perf_counter_ns, rows)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="bench-row-counter", daemon=True)

    def __enter__(self) -> RowCounter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(STOP_S)

    def _poll(self) -> None:
        while True:
            stopping = self._stop.wait(POLL_S)
            self.samples.append((time.perf_counter_ns(), self._count()))
            if stopping:
                return
