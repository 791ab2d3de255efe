"""One timed run of the hub ingest bench: broker, fresh database, hub workers, devices.

bench/hub_ingest.py decides the loads and turns runs into rows; a run here starts mosquitto
and `count` `appliance-hub serve` workers on a fresh database (a SQLite file, or a copy of a
migrated PostgreSQL template), lets the simulated devices send as told, and keeps what
they saw, how the sale table filled, and the CPU each process used.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.broker import cpu_seconds, running_broker
from bench.hub_fleet import Fleet, FleetResult, Messages
from bench.hub_workers import (
    Count,
    CpuUse,
    RowCounter,
    hub_workers,
    log_tails,
    postgres_counter,
    sqlite_counter,
    tree_cpu_seconds,
    worker_ids,
)
from bench.postgres import BenchPostgres
from bench.stats import percentile, summary_us
from hub.db import open_hub_database, sqlite_path
from hub.migrations import migrate

log = logging.getLogger("bench")
READY_S = 30.0
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
TEMPLATE = "hub_template"


@dataclass(frozen=True, slots=True)
class Measured:
    """One run: what the devices saw, the sale table filling, and the CPU each part used."""

    fleet: FleetResult
    samples: list[tuple[int, int]]
    cpu_s: dict[str, float]
    sales: int
    workers: int
    database: str
    wal_bytes: int | None = None  # PostgreSQL's write-ahead log written meanwhile
    load_average: tuple[float, float] = (0.0, 0.0)  # the machine's, 1 min, before and after

    @property
    def latencies_ns(self) -> list[int]:
        """Each batch's ack latency."""
        return self.fleet.latencies_ns

    def ms(self, q: float) -> float:
        """The q-th percentile ack latency in milliseconds."""
        return percentile(self.latencies_ns, q) / NS_PER_MS

    def seconds_to_all_rows(self) -> float:
        """From the first send until the polled sale table held every sale."""
        for at, count in self.samples:
            if count >= self.sales:
                return (at - self.fleet.start_ns) / NS_PER_S
        raise RuntimeError(f"the hub never held {self.sales} rows: {self.samples[-3:]}")

    def rate(self) -> float:
        """Sales per second into the table."""
        return self.sales / self.seconds_to_all_rows()

    def details(self) -> dict[str, object]:
        """What the JSON report keeps of this run."""
        hub_cpu = sum(v for k, v in self.cpu_s.items() if k.startswith("bench-hub"))
        db_cpu = self.cpu_s.get("postgres", 0.0)
        sent_s = (self.fleet.last_send_ns - self.fleet.start_ns) / NS_PER_S
        return {
            "database": self.database,
            "workers": self.workers,
            "sales": self.sales,
            "batches": len(self.latencies_ns),
            "seconds_to_all_rows": round(self.seconds_to_all_rows(), 3),
            "seconds_sending": round(sent_s, 3),
            "ack_latency": summary_us(self.latencies_ns),
            "unexpected_acks": self.fleet.unexpected_acks,
            "cpu_s": self.cpu_s,  # this_process = the simulated devices
            "hub_cpu_us_per_sale": round(hub_cpu / self.sales * 1e6, 1),
            "postgres_cpu_us_per_sale": round(db_cpu / self.sales * 1e6, 1) if db_cpu else None,
            "row_samples": len(self.samples),
            "wal_bytes_per_sale": round(self.wal_bytes / self.sales) if self.wal_bytes else None,
            # Anything else running on this machine competes for its cores: shown here.
            "load_average_1m_before_after": self.load_average,
        }


Drive = Callable[[Fleet], FleetResult]


class Database:
    """A fresh hub database for one run: its URL, how to count its sales, and its CPU."""

    def __init__(self, url: str, postgres: BenchPostgres | None = None) -> None:
        self.url = url
        self.kind = "sqlite" if postgres is None else "postgresql"
        self._postgres = postgres

    @classmethod
    def sqlite(cls, workdir: Path) -> Database:
        """A hub database file the worker creates."""
        workdir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{(workdir / 'hub.db').resolve()}")

    @classmethod
    def postgresql(cls, postgres: BenchPostgres, name: str) -> Database:
        """A copy of the migrated template on the server."""
        return cls(postgres.new_database(name, template=TEMPLATE), postgres)

    def counter(self) -> tuple[Count, Callable[[], None]]:
        """Count the sale table (opened once the hub has created it)."""
        if self._postgres is None:
            return sqlite_counter(Path(sqlite_path(self.url)))
        return postgres_counter(self.url)

    def wal_bytes(self) -> int | None:
        """Where PostgreSQL's write-ahead log stands, in bytes (None: SQLite)."""
        if self._postgres is None:
            return None
        import psycopg2

        connection = psycopg2.connect(self.url)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
                row = cursor.fetchone()
        finally:
            connection.close()
        return int(row[0]) if row else None

    def cpu(self) -> dict[str, Callable[[], float]]:
        """The database server's CPU reading, when it is a server."""
        if self._postgres is None:
            return {}
        pid = self._postgres.pid
        return {"postgres": lambda: tree_cpu_seconds(pid)}


def migrated_template(postgres: BenchPostgres) -> None:
    """The migrated hub database each run copies (as a deployment migrates once, then
    starts its workers: they find the schema current)."""
    db = open_hub_database(postgres.new_database(TEMPLATE))
    try:
        migrate(db)
    finally:
        db.close()


def measure(
    workdir: Path,
    database: Database,
    plan: dict[str, Messages],
    drive: Drive,
    *,
    workers: int = 1,
) -> Measured:
    """Broker and hub workers on a fresh database; the devices send as `drive` says; timed."""
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    sales = sum(messages[-1][0] for messages in plan.values() if messages)  # seqs from 1
    with running_broker(workdir / "broker") as broker, Fleet(broker, plan) as fleet:
        ids = worker_ids(workers)
        with hub_workers(workdir, broker, database.url, workers) as hubs:
            if not fleet.wait_online(set(ids), READY_S):
                raise RuntimeError(f"hub workers not online: {log_tails(workdir)}")
            count, close = database.counter()
            try:
                readings = {name: _pid_cpu(p.pid) for name, p in hubs.items()}
                readings["broker"] = _pid_cpu(broker.pid)
                readings.update(database.cpu())
                gc.collect()
                wal_before = database.wal_bytes()
                load_before = os.getloadavg()[0]
                with RowCounter(count) as counter:
                    cpu = CpuUse(readings)
                    result = drive(fleet)
                    cpu_s = cpu.used()
                wal_after = database.wal_bytes()
                load = (round(load_before, 2), round(os.getloadavg()[0], 2))
            finally:
                close()
    held = counter.samples[-1][1] if counter.samples else 0
    if held != sales:  # every batch was acknowledged: each of its sales is there, once
        raise RuntimeError(f"the hub holds {held} sales, {sales} were acknowledged")
    log.info(
        "hub_ingest %s/%s: %.1f s", workdir.parent.name, workdir.name, time.monotonic() - began
    )
    wal = None if wal_before is None or wal_after is None else wal_after - wal_before
    return Measured(result, counter.samples, cpu_s, sales, workers, database.kind, wal, load)


def _pid_cpu(pid: int | None) -> Callable[[], float]:
    return lambda: cpu_seconds(pid)
