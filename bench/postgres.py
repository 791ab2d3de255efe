"""A PostgreSQL server for the hub benchmarks: loopback only, free port, stopped by PID.

Unlike the tests' server (fsync off, for speed), this one runs with PostgreSQL's durable
defaults (fsync on, synchronous_commit on): a hub acknowledges sales after its commit, so
the commit's flush is part of what is measured.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.broker import HOST, free_port

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
USER = "hub"


def server_binaries() -> Path:
    """The folder holding initdb and postgres (Debian keeps them off PATH, per version)."""
    found = shutil.which("initdb")
    if found and (Path(found).parent / "postgres").exists():
        return Path(found).parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError("no PostgreSQL server (initdb, postgres): apt-get install postgresql")


class BenchPostgres:
    """initdb + postgres on 127.0.0.1:<free port>, trust auth for local connections only."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.pid: int | None = None
        self._bindir = server_binaries()
        self._uid: int | None = None
        self._own_dir = False
        if os.geteuid() == 0:
            # postgres refuses to run as root: it runs as the 'postgres' system user, in a
            # folder that user can enter.
            self._uid = pwd.getpwnam("postgres").pw_uid
            self.datadir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
            os.chown(self.datadir, self._uid, -1)
            self._own_dir = True
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            self.datadir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The server's log."""
        return self.datadir / "postgres.log"

    def start(self) -> None:
        """Create the cluster, start the server and wait until it accepts connections."""
        import psycopg2

        data = str(self.datadir / "data")
        subprocess.run(
            [
                str(self._bindir / "initdb"),
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                USER,
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self._uid,
            cwd=self.datadir,
        )
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    *(str(self._bindir / "postgres"), "-D", data, "-h", HOST),
                    *("-p", str(self.port), "-k", str(self.datadir)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._uid,
                cwd=self.datadir,
            )
        self.pid = self._process.pid
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited at start: {self.log_path.read_text()[-2000:]}")
            try:
                psycopg2.connect(host=HOST, port=self.port, user=USER, dbname="postgres").close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not accept connections in time")

    def url(self, name: str) -> str:
        """The postgresql:// URL of a database on this server."""
        return f"postgresql://{USER}@{HOST}:{self.port}/{name}"

    def new_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database (empty, or a copy of `template`); returns its URL."""
        import psycopg2

        connection = psycopg2.connect(host=HOST, port=self.port, user=USER, dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                copy = f' TEMPLATE "{template}"' if template else ""
                cursor.execute(f'CREATE DATABASE "{name}"{copy}')
        finally:
            connection.close()
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown of the server this object started (by its PID); safe twice."""
        process, self._process = self._process, None
        if process is not None:
            process.send_signal(signal.SIGINT)  # a fast shutdown: sessions are ended
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        self.pid = None
        if self._own_dir:
            shutil.rmtree(self.datadir, ignore_errors=True)
            self._own_dir = False


@contextlib.contextmanager
def running_postgres(workdir: Path) -> Iterator[BenchPostgres]:
    """A started server, stopped (and its files removed when they were its own) on the way out."""
    server = BenchPostgres(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
