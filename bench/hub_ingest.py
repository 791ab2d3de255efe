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
    steady_rate: float  # sales/s offered in all
    steady_s: float
    till_every_s: float  # a till's mean time between two sales
    till_s: float


# 3,000 sales/s: what the burst row measured on this code before group commit (2,825 and
# 3,156 sales/s in two runs); the steady row offers that rate.
FULL = Sizes(500, 3, 20, 3000.0, 10.0, 10.0, 20.0)
QUICK = Sizes(50, 2, 20, 500.0, 1.5, 1.0, 1.5)


@dataclass(frozen=True, slots=True)
class Measured:
    """One run: what the devices saw, the sale table filling, and the CPU each part used."""

    fleet: FleetResult
    samples: list[tuple[int, int]]
    cpu_s: dict[str, float]
    sales: int
    workers: int
    database: str

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
                with RowCounter(count) as counter:
                    cpu = CpuUse(readings)
                    result = drive(fleet)
                    cpu_s = cpu.used()
            finally:
                close()
    held = counter.samples[-1][1] if counter.samples else 0
    if held != sales:  # every batch was acknowledged: each of its sales is there, once
        raise RuntimeError(f"the hub holds {held} sales, {sales} were acknowledged")
    log.info("%s %s: %.1f s in all", NAME, workdir.name, time.monotonic() - began)
    return Measured(result, counter.samples, cpu_s, sales, workers, database.kind)


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


def _sqlite_rows(workdir: Path, sizes: Sizes, burst: dict[str, Messages]) -> list[Row]:
    setup = _setup(sizes)
    where = workdir / "sqlite-burst"
    run = measure(where, _Database.sqlite(where), burst, lambda f: f.run_closed_loop(STALL_S))
    little_ms = sizes.devices * sizes.per_batch / run.rate() * 1000
    rows = [
        Row(
            NAME,
            "rate",
            run.rate(),
            "sales/s",
            target=Target(sizes.steady_rate, at_most=False),
            note=(
                f"SQLite, one worker. {_burst_note(sizes)} {setup} Rate = sales / time until "
                "the polled sale table held them all; target: the rate the old bench reached."
            ),
            details={**run.details(), "poll_s": POLL_S, "filesystem": filesystem_of(workdir)},
        ),
        Row(
            NAME,
            "p99 ack latency",
            run.ms(99),
            "ms",
            note=(
                f"SQLite, one worker. {_burst_note(sizes)} {LATENCY} Every device keeps a batch "
                f"queued, so this is queueing: Little's law gives devices x sales per batch / "
                f"rate = {little_ms:.0f} ms. See the steady rows for the latency at that rate."
            ),
            details={**run.details(), "littles_law_ms": round(little_ms, 1)},
        ),
    ]
    schedule = Schedule.poisson(
        devices=sizes.devices,
        per_batch=sizes.per_batch,
        sales_per_s=sizes.steady_rate,
        seconds=sizes.steady_s,
        seed=SEED,
    )
    steady_plan = build_messages(schedule.batch_counts(), sizes.per_batch)
    where = workdir / "sqlite-steady"
    run = measure(
        where, _Database.sqlite(where), steady_plan, lambda f: f.run_open_loop(schedule, STALL_S)
    )
    rows.append(
        _latency_row("steady p99 ack latency", run, f"SQLite, one worker. {_steady_note(sizes)}")
    )
    till = Schedule.poisson(
        devices=sizes.devices,
        per_batch=1,
        sales_per_s=sizes.devices / sizes.till_every_s,
        seconds=sizes.till_s,
        seed=SEED + 1,
    )
    till_plan = build_messages(till.batch_counts(), 1)
    where = workdir / "sqlite-till"
    run = measure(
        where, _Database.sqlite(where), till_plan, lambda f: f.run_open_loop(till, STALL_S)
    )
    rows.append(
        _latency_row("till-pace p99 ack latency", run, f"SQLite, one worker. {_till_note(sizes)}")
    )
    return rows


def _postgres_rows(workdir: Path, sizes: Sizes, burst: dict[str, Messages]) -> list[Row]:
    schedule = Schedule.poisson(
        devices=sizes.devices,
        per_batch=sizes.per_batch,
        sales_per_s=sizes.steady_rate,
        seconds=sizes.steady_s,
        seed=SEED + 2,
    )
    steady_plan = build_messages(schedule.batch_counts(), sizes.per_batch)
    bursts: dict[int, Measured] = {}
    steadies: dict[int, Measured] = {}
    with running_postgres(workdir / "postgres") as postgres:
        migrated_template(postgres)
        for workers in (1, 2):
            name = f"pg{workers}_burst"
            bursts[workers] = measure(
                workdir / name,
                _Database.postgresql(postgres, name),
                burst,
                lambda f: f.run_closed_loop(STALL_S),
                workers=workers,
            )
            name = f"pg{workers}_steady"
            steadies[workers] = measure(
                workdir / name,
                _Database.postgresql(postgres, name),
                steady_plan,
                lambda f: f.run_open_loop(schedule, STALL_S),
                workers=workers,
            )
    setup = _setup(sizes)
    one = bursts[1].rate()
    rows = []
    for workers in (1, 2):
        label = "1 worker" if workers == 1 else f"{workers} workers"
        where = f"PostgreSQL, {label} sharing `$share/hub/...`."
        compared = workers > 1
        rows.append(
            Row(
                NAME,
                f"postgres rate, {label}",
                bursts[workers].rate(),
                "sales/s",
                baseline=one if compared else None,
                baseline_name="1 worker on the same PostgreSQL, this run" if compared else "",
                ratio=bursts[workers].rate() / one if compared else None,
                note=(
                    f"{where} {_burst_note(sizes)} {setup} Rate = sales / time until the "
                    "polled sale table held them all. Workers, broker, PostgreSQL and the "
                    "simulated devices share this machine's cores."
                ),
                details=bursts[workers].details(),
            )
        )
        rows.append(
            _latency_row(
                f"postgres steady p99 ack latency, {label}",
                steadies[workers],
                f"{where} {_steady_note(sizes)}",
            )
        )
    return rows


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Ingest from many simulated appliances: throughput, and ack latency at a steady rate."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    burst = build_messages([sizes.burst_batches] * sizes.devices, sizes.per_batch)
    return _sqlite_rows(workdir, sizes, burst) + _postgres_rows(workdir, sizes, burst)
