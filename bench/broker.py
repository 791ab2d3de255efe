"""A mosquitto broker for the hub benchmarks: loopback only, free port, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0

# Throughput settings, the same for ours and the baselines. No persistence: the product's
# durability is the outbox and the hub database, not the broker's store. Queues unbounded
# enough that a burst of QoS 1 messages to a slower subscriber is never dropped (the
# default of 1000 would drop, and a baseline that loses messages never finishes).
# max_inflight_messages 0 lifts the broker's per-client limit on outgoing QoS 1 messages
# awaiting PUBACK (default 20); clients still apply their own (paho: 20).
CONFIG = """\
listener {port} {host}
allow_anonymous true
persistence false
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 0
set_tcp_nodelay true
sys_interval 0
log_dest file {log}
log_type error
log_type warning
"""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class BenchBroker:
    """mosquitto on 127.0.0.1 with a config written to `workdir`; `start()` then `stop()`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.host = HOST
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The broker's process id while running."""
        return self._process.pid if self._process is not None else None

    @property
    def config(self) -> str:
        """The configuration this broker runs with (saved in the benchmark's details)."""
        return CONFIG.format(port=self.port, host=self.host, log=self.log_path)

    def start(self) -> None:
        """Start mosquitto and wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "mosquitto.conf"
        path.write_text(self.config)
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"mosquitto exited at start: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port}: {self._log_tail()}")

    def stop(self) -> None:
        """Terminate the broker this object started (by its PID); safe twice."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a running child process has used so far (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used from construction on by child processes (by PID) and by this process."""

    def __init__(self, children: dict[str, int | None]) -> None:
        self._children = children
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        used = {name: cpu_seconds(pid) for name, pid in self._children.items()}
        return {**used, "this_process": time.process_time()}

    def used(self) -> dict[str, float]:
        """CPU seconds each used since construction; `this_process` counts all its threads."""
        now = self._now()
        return {name: round(now[name] - self._start[name], 3) for name in now}


@contextlib.contextmanager
def running_broker(workdir: Path) -> Iterator[BenchBroker]:
    """A started broker, stopped on the way out."""
    broker = BenchBroker(workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
