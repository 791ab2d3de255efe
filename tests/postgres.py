"""A throwaway PostgreSQL cluster on a loopback port, for the hub's tests."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import real_parts
from tests.broker import free_port


def _pg_bindir() -> Path | None:
    for name in ("initdb", "postgres"):
        found = shutil.which(name)
        if found and (Path(found).parent / "postgres").exists():
            return Path(found).parent
    # Debian keeps the server binaries out of PATH, one folder per major version.
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((c for c in candidates if (c / "initdb").exists()), None)


class PostgresCluster:
    """initdb + postgres on 127.0.0.1:<free port>, trust auth, stopped by PID."""

    def __init__(self, bindir: Path, datadir: Path, uid: int | None) -> None:
        self.bindir = bindir
        self.datadir = datadir
        self.uid = uid
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._databases = 0

    def start(self, timeout: float = 30.0) -> None:
        """Create the cluster and start the server; wait until it accepts connections."""
        subprocess.run(
            [
                *(str(self.bindir / "initdb"), "-D", str(self.datadir / "data")),
                *("-A", "trust", "-U", "hub", "-E", "UTF8", "--no-sync"),
            ],
            check=True,
            capture_output=True,
            user=self.uid,
            cwd=self.datadir,
        )
        self.launch(timeout)

    def launch(self, timeout: float = 30.0) -> None:
        """Start the server on the cluster (again after `stop`, same port and data); wait."""
        import psycopg2

        data = str(self.datadir / "data")
        log = (self.datadir / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(str(self.bindir / "postgres"), "-D", data, "-c", "fsync=off"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.datadir)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self.uid,
            cwd=self.datadir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.datadir / "postgres.log").read_text()[-2000:])
            try:
                psycopg2.connect(
                    host="127.0.0.1", port=self.port, user="hub", dbname="postgres"
                ).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not start in time")

    def new_database(self) -> str:
        """A fresh empty database; returns its postgresql:// URL."""
        import psycopg2

        self._databases += 1
        name = f"hub_{self._databases}"
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="hub", dbname="postgres"
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name}")
        finally:
            connection.close()
        return f"postgresql://hub@127.0.0.1:{self.port}/{name}"

    def stop(self, how: signal.Signals = signal.SIGINT) -> None:
        """Shut down the server we started, by its PID; safe twice; `launch` starts it again.

        SIGINT is a fast shutdown (sessions are ended, their transactions rolled back);
        SIGQUIT an immediate one, like a crash (crash recovery at the next start).
        """
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(how)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running_postgres(workdir: Path) -> Iterator[PostgresCluster]:
    """A started cluster (missing parts fail under CI, see real_parts), stopped on exit."""
    bindir = _pg_bindir()
    if bindir is None:
        real_parts.missing("the PostgreSQL server (initdb, postgres)", "apt-get install postgresql")
    real_parts.module("psycopg2", "psycopg2-binary")
    uid: int | None = None
    if os.geteuid() == 0:
        # postgres refuses to run as root: run it as the 'postgres' system user, in a
        # folder that user can reach (pytest's tmp_path is private to root).
        try:
            uid = pwd.getpwnam("postgres").pw_uid
        except KeyError:
            real_parts.missing(
                "the 'postgres' user that runs the server when the tests run as root",
                "apt-get install postgresql",
            )
        datadir = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        os.chown(datadir, uid, -1)
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        datadir = workdir
    cluster = PostgresCluster(bindir, datadir, uid)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if uid is not None:
            shutil.rmtree(datadir, ignore_errors=True)
