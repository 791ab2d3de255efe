"""A real mosquitto broker for tests: a free loopback port, its own config, stopped by PID."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests import real_parts


def mosquitto_binary() -> str:
    """The broker's program; Debian installs it in /usr/sbin, which a normal user's PATH lacks."""
    return real_parts.binary("mosquitto", "mosquitto", also=("/usr/sbin/mosquitto",))


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MosquittoBroker:
    """Starts mosquitto on 127.0.0.1 with a config written to `workdir`; restartable."""

    def __init__(self, workdir: Path, *, port: int | None = None, extra_config: str = "") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"

    def config_text(self) -> str:
        """The broker configuration: loopback only, persistence off, anonymous allowed."""
        return (
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "max_queued_messages 100000\n"
            f"{self.extra_config}"
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) the broker and wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "mosquitto.conf"
        config.write_text(self.config_text())
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err} {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the broker we started (by its PID); safe twice."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr:
            process.stderr.close()

    def kill(self) -> None:
        """SIGKILL the broker (a crash), then reap it."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=5)
            if process.stderr:
                process.stderr.close()

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""
