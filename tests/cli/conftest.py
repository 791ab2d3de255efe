"""Shared set-up for the command-line tests: a config file, a clean environment, helpers."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from appliance.cli.main import cli
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.settings import DEFAULT_CONFIG_PATH, Settings, load_settings
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.migrations import migrate
from tests import real_parts

DEVICE_ID = "till-07"
RECEIPT_PREFIX = "T7"
WAIT_SECONDS = 10.0

CONFIG_TEMPLATE = """\
[device]
id = "{device_id}"
receipt_prefix = "{prefix}"

[store]
name = "Corner shop"
currency = "EUR"
locale = "de_DE"
prices_include_tax = true

[store.tax_classes]
standard = 2000
reduced = 500
zero = 0

[database]
path = "{database}"

[logging]
level = "INFO"
"""

# Variables a developer's shell or a systemd unit may carry into the test run.
_OUTSIDE_VARIABLES = (
    "APPLIANCE_SIMULATE",
    "APPLIANCE_CONFIG",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No configuration or systemd variables from outside; simulated state under tmp_path."""
    for name in _OUTSIDE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(state))
    return state


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the configured appliance keeps its database (not created yet)."""
    return tmp_path / "data" / "appliance.db"


@pytest.fixture
def config(tmp_path: Path, db_path: Path) -> Path:
    """A valid configuration file pointing at `db_path`."""
    path = tmp_path / "appliance.toml"
    path.write_text(
        CONFIG_TEMPLATE.format(device_id=DEVICE_ID, prefix=RECEIPT_PREFIX, database=db_path),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def settings(config: Path) -> Settings:
    """The settings `config` holds."""
    return load_settings(config)


class Cli:
    """Runs `appliance ...` in-process through click's CliRunner."""

    def __init__(self, config: Path) -> None:
        """Commands get `--config config` unless told otherwise."""
        self.config = config
        self.runner = CliRunner()

    def __call__(self, *args: str, config: bool = True) -> Result:
        """Invoke the command; unexpected exceptions propagate so a traceback is a failure."""
        argv = [*args, "--config", str(self.config)] if config else list(args)
        return self.runner.invoke(cli, argv, catch_exceptions=False)


@pytest.fixture
def appliance(config: Path) -> Cli:
    """The `appliance` command, configured with `config`."""
    return Cli(config)


class FixedClock:
    """A clock that stays where a test puts it."""

    def __init__(self, now: datetime) -> None:
        """Start at `now` (timezone-aware)."""
        self.moment = now

    def now(self) -> datetime:
        """The current fake time."""
        return self.moment

    def monotonic(self) -> float:
        """Seconds since an arbitrary start."""
        return self.moment.timestamp()

    def advance(self, delta: timedelta) -> None:
        """Move on by `delta`."""
        self.moment += delta


@contextmanager
def opened(settings: Settings, clock: FixedClock | None = None) -> Iterator[Appliance]:
    """The appliance opened in-process (migrated, demo catalog seeded), closed afterwards."""
    app = Appliance.open(settings, clock=clock)
    try:
        seed_demo_catalog(app.catalog, settings.store)
        yield app
    finally:
        app.close()


@contextmanager
def catalog_at(path: Path) -> Iterator[SqliteCatalog]:
    """The catalog stored in the database file at `path`."""
    assert path.exists(), f"{path} does not exist"
    db = open_database(path)
    try:
        yield SqliteCatalog(db)
    finally:
        db.close()


def make_newer_schema(path: Path, version: int = 99) -> None:
    """A migrated database that claims a schema version from the future."""
    db = open_database(path)
    try:
        migrate(db)
    finally:
        db.close()
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA user_version = {version}")
        connection.commit()
    finally:
        connection.close()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


class NotifySocket:
    """A bound AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        """Bind at `path`."""
        assert len(str(path)) < 100, f"socket path too long for sun_path: {path}"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[str] = []

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def wait_for(
        self, done: Callable[[list[str]], bool], process: subprocess.Popen[bytes] | None = None
    ) -> list[str]:
        """Collect datagrams until `done(all received)` holds; fail after WAIT_SECONDS."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not done(self.received):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"timed out; datagrams so far: {self.received!r}")
            if process is not None and process.poll() is not None:
                self.drain()
                if done(self.received):
                    break
                pytest.fail(f"exited with {process.returncode}; datagrams: {self.received!r}")
            self.sock.settimeout(min(left, 0.5))
            try:
                self.received.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return self.received

    def drain(self) -> list[str]:
        """Take whatever is queued without waiting."""
        self.sock.setblocking(False)
        try:
            while True:
                self.received.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return self.received


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    """A notify socket in tmp_path."""
    receiver = NotifySocket(tmp_path / "notify.sock")
    yield receiver
    receiver.close()


def appliance_script() -> Path:
    """The `appliance` console script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("appliance")
    if not script.exists():
        real_parts.missing(
            f"the appliance console script next to {sys.executable}", "pip install -e ."
        )
    return script


class Spawner:
    """Starts real processes and makes sure none outlives its test."""

    def __init__(self, tmp_path: Path) -> None:
        """Logs go to files in tmp_path (a pipe could fill up and stall the child)."""
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def __call__(self, argv: list[str | Path], **env: str) -> subprocess.Popen[bytes]:
        """Start `argv` with the test's environment plus `env`; stderr goes to a file."""
        index = len(self.processes)
        stderr = (self.tmp_path / f"stderr-{index}.log").open("wb")
        with stderr:
            process = subprocess.Popen(
                [str(arg) for arg in argv],
                env={**os.environ, **env},
                cwd=self.tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.processes.append(process)
        return process

    def stderr(self, process: subprocess.Popen[bytes]) -> str:
        """What `process` wrote to stderr so far."""
        index = self.processes.index(process)
        return (self.tmp_path / f"stderr-{index}.log").read_text(errors="replace")

    def cleanup(self) -> None:
        """Kill (by pid) any process a failed test left running."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(WAIT_SECONDS)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    """Start real `appliance` processes."""
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.cleanup()


@pytest.fixture
def no_machine_config() -> None:
    """The test runs commands without --config: a machine's own configuration would be read."""
    real_parts.absent(DEFAULT_CONFIG_PATH, "commands without --config would read it")
