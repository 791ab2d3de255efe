"""A hub worker's interval work: due at the first chance, then every N seconds, never fatal."""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peewee import Database

from hub.periodic import PeriodicWork
from hub.server import BrokerEndpoint, HubServer
from tests.broker import MosquittoBroker
from tests.hub.test_server import wait_until


class SteppedClock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self) -> None:
        self.seconds = 100.0

    def now(self) -> datetime:
        return datetime(2030, 1, 15, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.seconds


def test_work_runs_at_the_first_chance_then_on_its_interval() -> None:
    clock, ran = SteppedClock(), []
    work = PeriodicWork(
        [(1.0, lambda: ran.append("fast")), (10.0, lambda: ran.append("slow"))], clock
    )

    work.run_due()
    assert ran == ["fast", "slow"]
    assert work.seconds_left() == 1.0
    clock.seconds += 0.5
    work.run_due()
    assert ran == ["fast", "slow"]  # nothing due yet
    assert work.seconds_left() == 0.5
    clock.seconds += 0.5
    work.run_due()
    assert ran == ["fast", "slow", "fast"]


def test_a_failing_work_is_logged_and_the_others_still_run() -> None:
    clock, ran = SteppedClock(), []

    def broken() -> None:
        raise RuntimeError("database gone")

    work = PeriodicWork([(1.0, broken), (1.0, lambda: ran.append("after"))], clock)
    work.run_due()
    clock.seconds += 1.0
    work.run_due()
    assert ran == ["after", "after"]


def test_no_work_means_no_deadline() -> None:
    assert PeriodicWork([], SteppedClock()).seconds_left() is None


def test_a_worker_says_once_that_its_interval_work_waits_for_the_database(
    broker: MosquittoBroker, hub_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database fault in interval work is one warning per outage, not a traceback a second."""
    readonly = tmp_path / "readonly.db"
    sqlite3.connect(readonly).execute("CREATE TABLE t (x INTEGER)").connection.commit()
    runs: list[str] = []
    healthy = threading.Event()

    def work() -> None:
        runs.append("run")
        if healthy.is_set():
            return
        with sqlite3.connect(f"file:{readonly}?mode=ro", uri=True) as db:
            db.execute("INSERT INTO t VALUES (1)")  # a real SQLITE_READONLY from the driver

    server = HubServer(
        hub_db, BrokerEndpoint(broker.host, broker.port), worker_id="w1", periodic=[(0.01, work)]
    )
    with caplog.at_level(logging.INFO, logger="hub"):
        server.start(timeout=10.0)
        try:
            wait_until(lambda: len(runs) >= 20)
            healthy.set()
            seen = len(runs)
            wait_until(lambda: len(runs) > seen)
        finally:
            server.stop()

    waits = [r for r in caplog.records if "waits for the database" in r.getMessage()]
    assert len(waits) == 1
    assert waits[0].levelno == logging.WARNING
    assert "readonly" in waits[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]  # no traceback at all
