"""Hub ingest: `appliance-hub serve` workers taking sales from hundreds of devices at once.

Simulated devices (bench/hub_fleet.py) publish SalesBatch messages through mosquitto to
hub worker processes (bench/hub_workers.py) on a fresh database per run: SQLite as the
embedded hub runs, and PostgreSQL (bench/postgres.py, durable defaults) with one and with
two workers sharing the `$share` subscriptions. Three loads:

- burst: every device sends its batches back to back (the next on the previous ack),
  all starting at once: the hub's throughput. Its latency is queueing: with D devices
  each holding B sales in flight, Little's law makes it about D*B / rate.
- steady: the same devices and batch size, but each batch leaves at a random moment
  (a Poisson process per device), all together at STEADY_RATE, the rate the burst row
  measured before group commit: the same rate, arriving as it does from shops.
- till pace: each device rings a sale every TILL_EVERY_S seconds on average and uploads
  it at once, one sale per batch, as an appliance's uploader does when online.
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
from bench.hub_fleet import PUBLISHERS, Fleet, FleetResult, Messages, Schedule, build_messages
from bench.hub_workers import (
    POLL_S,
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
from bench.postgres import BenchPostgres, running_postgres
from bench.result import Row, Target
from bench.stats import percentile, summary_us
from bench.workdir import filesystem_of
from hub.db import open_hub_database, sqlite_path
from hub.migrations import migrate

NAME = "hub_ingest"
log = logging.getLogger("bench")
READY_S = 30.0
STALL_S = 30.0  # no acknowledgement for this long: the run failed, not a slow sample
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
LATENCY_TARGET_MS = 250.0
SEED = 15


@dataclass(frozen=True, slots=True)
class Sizes:
    """The fleet and the three loads."""

    devices: int
    burst_batches: int  # per device
    per_batch: int  # sales per batch, burst and steady
    single_batches: int  # per device, in the burst of one-sale batches
    steady_rate: float  # sales/s offered in all
    steady_s: float
    till_every_s: float  # a till's mean time between two sales
    till_s: float


# 3,000 sales/s: what the burst row measured on this code before group commit (2,825 and
# 3,156 sales/s in two runs); the steady row offers that rate.
FULL = Sizes(500, 3, 20, 10, 3000.0, 10.0, 10.0, 20.0)
QUICK = Sizes(50, 2, 20, 4, 500.0, 1.5, 1.0, 1.5)


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
TEMPLATE = "hub_template"


class _Database:
    """A fresh hub database for one run: its URL, how to count its sales, and its CPU."""

    def __init__(self, url: str, postgres: BenchPostgres | None = None) -> None:
        self.url = url
        self.kind = "sqlite" if postgres is None else "postgresql"
        self._postgres = postgres

    @classmethod
    def sqlite(cls, workdir: Path) -> _Database:
        """A hub database file the worker creates."""
        workdir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{(workdir / 'hub.db').resolve()}")

    @classmethod
    def postgresql(cls, postgres: BenchPostgres, name: str) -> _Database:
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
    database: _Database,
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
    log.info("%s %s/%s: %.1f s", NAME, workdir.parent.name, workdir.name, time.monotonic() - began)
    wal = None if wal_before is None or wal_after is None else wal_after - wal_before
    return Measured(result, counter.samples, cpu_s, sales, workers, database.kind, wal, load)


def _pid_cpu(pid: int | None) -> Callable[[], float]:
    return lambda: cpu_seconds(pid)


# --- the rows ----------------------------------------------------------------------------


def _setup(sizes: Sizes) -> str:
    return (
        f"{sizes.devices} simulated devices over {PUBLISHERS} paho clients, acks through one "
        "wildcard subscription, mosquitto on loopback, hub workers = `appliance-hub serve` "
        "child processes on a fresh database (SQLite: WAL, synchronous=FULL; PostgreSQL: "
        "fsync and synchronous_commit on), all on this machine (see cpus in the environment)."
    )


def _burst_note(sizes: Sizes) -> str:
    return (
        f"Burst (closed loop): each device sends {sizes.burst_batches} batches of "
        f"{sizes.per_batch} sales back to back, the next on the previous SalesAck, all "
        "starting at once; a throughput test."
    )


def _singles_note(sizes: Sizes) -> str:
    return (
        f"Burst of one-sale batches (closed loop): each device sends {sizes.single_batches} "
        "batches of one sale back to back, as an online appliance uploads each sale: the "
        "rate at which a worker takes the messages of shops selling as usual."
    )


def _steady_note(sizes: Sizes) -> str:
    per_device_s = sizes.devices * sizes.per_batch / sizes.steady_rate
    return (
        f"Steady (open loop): batches of {sizes.per_batch} sales, each leaving at a random "
        f"moment (a Poisson process per device, one batch every {per_device_s:.2g} s on "
        f"average), {sizes.steady_rate:g} sales/s offered in all for {sizes.steady_s:g} s: "
        "the rate the burst row reached before group commit, spread in time as independent "
        "shops spread it. That is far above one till's pace: it stands for a larger fleet's "
        "sales, or a fleet catching up after an outage."
    )


def _till_note(sizes: Sizes) -> str:
    return (
        f"Till pace (open loop): each device rings a sale every {sizes.till_every_s:g} s on "
        "average (a busy till: a sale every 10-30 s) and uploads it at once as a batch of "
        f"one, as the appliance's uploader does when online; {sizes.till_s:g} s."
    )


LATENCY = (
    "Latency = publish of a batch to the first SalesAck of its device covering its last "
    "seq (the hub acks after its commit)."
)


def _latency_row(metric: str, run: Measured, note: str) -> Row:
    return Row(
        NAME,
        metric,
        run.ms(99),
        "ms",
        target=Target(LATENCY_TARGET_MS, at_most=True),
        note=f"{note} {LATENCY} p50 {run.ms(50):.1f} ms, p99 {run.ms(99):.1f} ms.",
        details=run.details(),
    )


@dataclass(frozen=True, slots=True)
class Loads:
    """What the devices send in each kind of run (built once, before any timing)."""

    burst: dict[str, Messages]
    singles: dict[str, Messages]  # a burst of one-sale batches
    steady: Schedule
    steady_plan: dict[str, Messages]
    till: Schedule
    till_plan: dict[str, Messages]

    @classmethod
    def build(cls, sizes: Sizes) -> Loads:
        """The burst, steady and till-pace loads of these sizes."""
        steady = Schedule.poisson(
            devices=sizes.devices,
            per_batch=sizes.per_batch,
            sales_per_s=sizes.steady_rate,
            seconds=sizes.steady_s,
            seed=SEED,
        )
        till = Schedule.poisson(
            devices=sizes.devices,
            per_batch=1,
            sales_per_s=sizes.devices / sizes.till_every_s,
            seconds=sizes.till_s,
            seed=SEED + 1,
        )
        return cls(
            burst=build_messages([sizes.burst_batches] * sizes.devices, sizes.per_batch),
            singles=build_messages([sizes.single_batches] * sizes.devices, 1),
            steady=steady,
            steady_plan=build_messages(steady.batch_counts(), sizes.per_batch),
            till=till,
            till_plan=build_messages(till.batch_counts(), 1),
        )


@dataclass(frozen=True, slots=True)
class Runs:
    """One database setup's measured runs (till pace only where asked)."""

    burst: Measured
    singles: Measured
    steady: Measured
    till: Measured | None = None


def _runs(
    workdir: Path, database: Callable[[str], _Database], loads: Loads, workers: int, till: bool
) -> Runs:
    def run(name: str, plan: dict[str, Messages], drive: Drive) -> Measured:
        return measure(workdir / name, database(name), plan, drive, workers=workers)

    def closed(fleet: Fleet) -> FleetResult:
        return fleet.run_closed_loop(STALL_S)

    return Runs(
        burst=run("burst", loads.burst, closed),
        singles=run("singles", loads.singles, closed),
        steady=run("steady", loads.steady_plan, lambda f: f.run_open_loop(loads.steady, STALL_S)),
        till=(
            run("till", loads.till_plan, lambda f: f.run_open_loop(loads.till, STALL_S))
            if till
            else None
        ),
    )


def _rate_row(
    metric: str,
    run: Measured,
    note: str,
    *,
    target: Target | None = None,
    baseline: Measured | None = None,
) -> Row:
    return Row(
        NAME,
        metric,
        run.rate(),
        "sales/s",
        target=target,
        baseline=baseline.rate() if baseline else None,
        baseline_name="1 worker on the same PostgreSQL, this run" if baseline else "",
        ratio=run.rate() / baseline.rate() if baseline else None,
        note=f"{note} Rate = sales / time until the polled sale table held them all.",
        details=run.details(),
    )


def _sqlite_rows(workdir: Path, sizes: Sizes, loads: Loads) -> list[Row]:
    setup = _setup(sizes)
    folder = workdir / "sqlite"
    runs = _runs(folder, lambda name: _Database.sqlite(folder / name), loads, 1, till=True)
    assert runs.till is not None
    where = "SQLite, one worker."
    little_ms = sizes.devices * sizes.per_batch / runs.burst.rate() * 1000
    return [
        _rate_row(
            "rate",
            runs.burst,
            f"{where} {_burst_note(sizes)} {setup} Target: the rate the old bench reached.",
            target=Target(sizes.steady_rate, at_most=False),
        ),
        Row(
            NAME,
            "p99 ack latency",
            runs.burst.ms(99),
            "ms",
            note=(
                f"{where} {_burst_note(sizes)} {LATENCY} Every device keeps a batch queued, so "
                "this is queueing: Little's law gives devices x sales per batch / rate = "
                f"{little_ms:.0f} ms. See the steady rows for the latency at that rate."
            ),
            details={
                **runs.burst.details(),
                "littles_law_ms": round(little_ms, 1),
                "poll_s": POLL_S,
                "filesystem": filesystem_of(workdir),
            },
        ),
        _rate_row("rate, one sale per batch", runs.singles, f"{where} {_singles_note(sizes)}"),
        _latency_row("steady p99 ack latency", runs.steady, f"{where} {_steady_note(sizes)}"),
        _latency_row("till-pace p99 ack latency", runs.till, f"{where} {_till_note(sizes)}"),
    ]


def _postgres_rows(workdir: Path, sizes: Sizes, loads: Loads) -> list[Row]:
    runs: dict[int, Runs] = {}
    with running_postgres(workdir / "postgres") as postgres:
        migrated_template(postgres)
        for workers in (1, 2):

            def database(name: str, workers: int = workers) -> _Database:
                return _Database.postgresql(postgres, f"pg{workers}_{name}")

            runs[workers] = _runs(workdir / f"pg{workers}", database, loads, workers, till=False)
    setup = _setup(sizes)
    rows = []
    for workers in (1, 2):
        label = "1 worker" if workers == 1 else f"{workers} workers"
        where = (
            f"PostgreSQL, {label} sharing `$share/hub/...`; workers, broker, PostgreSQL and "
            "the simulated devices share this machine's cores."
        )
        base = runs[1] if workers > 1 else None
        rows.append(
            _rate_row(
                f"postgres rate, {label}",
                runs[workers].burst,
                f"{where} {_burst_note(sizes)} {setup}",
                baseline=base.burst if base else None,
            )
        )
        rows.append(
            _rate_row(
                f"postgres rate, one sale per batch, {label}",
                runs[workers].singles,
                f"{where} {_singles_note(sizes)} {setup}",
                baseline=base.singles if base else None,
            )
        )
        rows.append(
            _latency_row(
                f"postgres steady p99 ack latency, {label}",
                runs[workers].steady,
                f"{where} {_steady_note(sizes)}",
            )
        )
    return rows


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Ingest from many simulated appliances: throughput, and ack latency at a steady rate."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    loads = Loads.build(sizes)
    return _sqlite_rows(workdir, sizes, loads) + _postgres_rows(workdir, sizes, loads)
