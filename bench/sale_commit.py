"""Durable sale commit: SalesLedger.commit against raw sqlite3 doing the same writes."""

from __future__ import annotations

import gc
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns

from peewee import SqliteDatabase

from appliance.core.catalog import Product
from appliance.core.sale import SaleDraft
from appliance.store.catalog import SqliteCatalog
from appliance.store.documents import SalesLedger
from bench import fixtures
from bench.databases import connect_raw, open_ours
from bench.result import Row, Target
from bench.sale_data import RECEIPT_PREFIX, RawSale, build_drafts, commit_raw, raw_sale
from bench.stats import percentile, summary_us
from bench.workdir import filesystem_of

NAME = "sale_commit"
PRODUCTS = 30
WARMUP = 50
START_STOCK = 1_000_000
NS_PER_S = 1e9
NS_PER_MS = 1e6
NOTE = (
    "Drafts (cart, taxes, tenders) are built before timing: drafting is UI-time work, not "
    "commit work. Ours = SalesLedger.commit on open_database + migrate (WAL, synchronous=FULL). "
    "Raw = sqlite3 module, the ledger's SQL, pragmas journal_mode=wal, synchronous=full, "
    "foreign_keys=on, same migrated schema, one BEGIN IMMEDIATE ... COMMIT per sale, "
    "precomputed values incl. the same JSON body, own fresh file in the same folder (see "
    "details.database_filesystem: real disk, not tmpfs). Blocks alternate ours/raw. Logging "
    "left unconfigured (root at WARNING, so the ledger's log.info is skipped)."
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many alternating blocks, and commits per block for each side."""

    blocks: int
    per_block: int


FULL = Sizes(blocks=10, per_block=300)
QUICK = Sizes(blocks=2, per_block=100)


@dataclass(slots=True)
class Tally:
    """One side's total time, per-commit latencies and per-block rates."""

    elapsed_ns: int = 0
    latencies: list[int] = field(default_factory=list)
    block_rates: list[int] = field(default_factory=list)

    def add(self, elapsed_ns: int, latencies: list[int]) -> None:
        """Count one timed block."""
        self.elapsed_ns += elapsed_ns
        self.latencies += latencies
        self.block_rates.append(round(len(latencies) * NS_PER_S / elapsed_ns))

    @property
    def rate(self) -> float:
        """Commits per second over every counted block."""
        return len(self.latencies) * NS_PER_S / self.elapsed_ns

    @property
    def p99_ms(self) -> float:
        """99th percentile commit latency in milliseconds."""
        return percentile(self.latencies, 99) / NS_PER_MS


def _time_ours(ledger: SalesLedger, drafts: list[SaleDraft]) -> tuple[int, list[int]]:
    latencies = []
    start = perf_counter_ns()
    for draft in drafts:
        t0 = perf_counter_ns()
        ledger.commit(draft)
        latencies.append(perf_counter_ns() - t0)
    return perf_counter_ns() - start, latencies


def _time_raw(connection: sqlite3.Connection, sales: list[RawSale]) -> tuple[int, list[int]]:
    latencies = []
    start = perf_counter_ns()
    for sale in sales:
        t0 = perf_counter_ns()
        commit_raw(connection, sale)
        latencies.append(perf_counter_ns() - t0)
    return perf_counter_ns() - start, latencies


def measure(
    ledger: SalesLedger,
    raw: sqlite3.Connection,
    drafts: list[SaleDraft],
    raw_sales: list[RawSale],
    sizes: Sizes,
) -> tuple[Tally, Tally]:
    """Warm both up, then time alternating blocks; returns (ours, raw)."""
    _time_ours(ledger, drafts[:WARMUP])
    _time_raw(raw, raw_sales[:WARMUP])
    ours, baseline = Tally(), Tally()
    for block in range(sizes.blocks):
        lo = WARMUP + block * sizes.per_block
        hi = lo + sizes.per_block
        gc.collect()
        # Alternate who goes first so neither side always follows the other's checkpoint.
        if block % 2 == 0:
            ours.add(*_time_ours(ledger, drafts[lo:hi]))
            baseline.add(*_time_raw(raw, raw_sales[lo:hi]))
        else:
            baseline.add(*_time_raw(raw, raw_sales[lo:hi]))
            ours.add(*_time_ours(ledger, drafts[lo:hi]))
    return ours, baseline


def _stocked_database(path: Path, products: list[Product]) -> None:
    db = open_ours(path)
    SqliteCatalog(db).upsert((p, START_STOCK) for p in products)
    db.close()


def _check_same_outcome(ours: SqliteDatabase, raw: sqlite3.Connection, count: int) -> None:
    """Both databases hold every sale and the same stock levels, or the comparison is void."""
    for sql in ("SELECT COUNT(*) FROM outbox", "SELECT SUM(stock_qty) FROM product"):
        mine, theirs = ours.execute_sql(sql).fetchone()[0], raw.execute(sql).fetchone()[0]
        if mine != theirs:
            raise RuntimeError(f"{sql}: ours {mine}, raw {theirs}")
    if ours.execute_sql("SELECT COUNT(*) FROM document").fetchone()[0] != count:
        raise RuntimeError(f"expected {count} documents")


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Commit the same drafts through the ledger and through raw sqlite3, in alternating blocks."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    products = [p for p in map(fixtures.product, range(PRODUCTS * 2)) if not p.age_restriction]
    products = products[:PRODUCTS]
    count = WARMUP + sizes.blocks * sizes.per_block
    drafts = build_drafts(products, count)
    raw_sales = [raw_sale(d, seq) for seq, d in enumerate(drafts, start=1)]
    ours_path, raw_path = workdir / "ours.db", workdir / "raw.db"
    _stocked_database(ours_path, products)
    _stocked_database(raw_path, products)
    ours_db = open_ours(ours_path)
    raw = connect_raw(raw_path)
    try:
        ledger = SalesLedger(ours_db, RECEIPT_PREFIX)
        ours, baseline = measure(ledger, raw, drafts, raw_sales, sizes)
        _check_same_outcome(ours_db, raw, count)
    finally:
        ours_db.close()
        raw.close()
    latency = {
        "ours_latency": summary_us(ours.latencies),
        "raw_latency": summary_us(baseline.latencies),
    }
    details = {
        "commits_per_side": len(ours.latencies),
        "blocks": sizes.blocks,
        "per_block": sizes.per_block,
        "warmup_commits": WARMUP,
        **latency,
        "ours_block_rates": ours.block_rates,
        "raw_block_rates": baseline.block_rates,
        "database_dir": str(workdir),
        "database_filesystem": filesystem_of(workdir),
    }
    return [
        Row(
            NAME,
            "rate",
            ours.rate,
            "commits/s",
            target=Target(0.7, at_most=False, on_ratio=True),
            baseline=baseline.rate,
            baseline_name="raw sqlite3, same writes",
            ratio=ours.rate / baseline.rate,
            note=NOTE,
            details=details,
        ),
        Row(
            NAME,
            "p99 latency",
            ours.p99_ms,
            "ms",
            target=Target(2.0, at_most=True),
            baseline=baseline.p99_ms,
            baseline_name="raw sqlite3 p99",
            ratio=ours.p99_ms / baseline.p99_ms,
            note="p99 of per-commit wall time (time.perf_counter_ns around one commit)",
            details=latency,
        ),
    ]
