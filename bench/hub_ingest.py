"""Hub ingest: `appliance-hub serve` workers taking sales from hundreds of devices at once.

Simulated devices (bench/hub_fleet.py) publish SalesBatch messages through mosquitto to
hub worker processes (bench/hub_workers.py) on a fresh database per run: SQLite as the
embedded hub runs, and PostgreSQL (bench/postgres.py, durable defaults) with one and with
two workers sharing the `$share` subscriptions. The loads (sizes in FULL and QUICK):

- burst: every device sends its batches back to back (the next on the previous ack),
  all starting at once: the hub's throughput. Its latency is queueing: with D devices
  each holding B sales in flight, Little's law makes it about D*B / rate.
- one sale per batch: the same closed loop with batches of one sale, as an online
  appliance uploads: the rate of a worker's per-batch work.
- steady: the burst's devices and batch size, but each batch leaves at a random moment
  (a Poisson process per device), all together at the rate the burst row measured before
  this code's group commit: that rate, arriving as independent shops spread it.
- till pace: each device rings a sale every few seconds on average and uploads it at
  once, one sale per batch, as an appliance's uploader does when online.

docs/scaling.md reads these rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.hub_fleet import PUBLISHERS, Fleet, FleetResult, Messages, Schedule, build_messages
from bench.hub_runs import Database, Drive, Measured, measure, migrated_template
from bench.hub_workers import POLL_S
from bench.postgres import running_postgres
from bench.result import Row, Target
from bench.workdir import filesystem_of

NAME = "hub_ingest"
STALL_S = 30.0  # no acknowledgement for this long: the run failed, not a slow sample
LATENCY_TARGET_MS = 250.0
SEED = 15


@dataclass(frozen=True, slots=True)
class Sizes:
    """The fleet and its loads."""

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
    workdir: Path, database: Callable[[str], Database], loads: Loads, workers: int, till: bool
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
    runs = _runs(folder, lambda name: Database.sqlite(folder / name), loads, 1, till=True)
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

            def database(name: str, workers: int = workers) -> Database:
                return Database.postgresql(postgres, f"pg{workers}_{name}")

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
