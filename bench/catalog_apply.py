"""Hub catalog on the device: CatalogSync applying a snapshot and deltas, against raw sqlite3.

Ours is the whole device path from the bytes the broker delivers: decode, validate,
stage every snapshot chunk durably, then one transaction (products, barcodes, the hub's
stock corrections, deletes, version). Raw is one plain sqlite3 transaction writing the
same rows with executemany and the same staging-and-merge SQL, rows built before timing.
"""

from __future__ import annotations

import gc
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

from msgspec.structs import replace
from peewee import SqliteDatabase

from appliance.mqtt.catalog_products import payload_from_product, product_rows
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.payloads import CatalogDelta, ProductPayload, SnapshotChunk, encode
from appliance.store import catalog as catalog_sql
from appliance.store.catalog_versions import ProductRows
from bench import fixtures
from bench.databases import connect_raw, create_migrated, open_ours
from bench.result import Row, Target
from bench.stats import median, percentile, summary_s

NAME = "catalog_apply"
DEVICE = "bench-0001"
CHUNK = 5000  # products per snapshot chunk, as the hub sends them


@dataclass(frozen=True, slots=True)
class Sizes:
    """Catalog size, products per delta, timed snapshots and timed deltas per side."""

    products: int
    delta: int
    snapshots: int
    deltas: int


FULL = Sizes(products=100_000, delta=1_000, snapshots=3, deltas=15)
QUICK = Sizes(products=2_000, delta=100, snapshots=1, deltas=3)


def _payloads(count: int, *, first: int = 0, shift: int = 0) -> list[ProductPayload]:
    """Products first..first+count (prices and stock moved by `shift`); every 10th has stock."""
    products = (fixtures.product(i) for i in range(first, first + count))
    return [
        replace(
            payload_from_product(p, fixtures.stock_of(i) - shift if i % 10 == 0 else None),
            price=p.price.minor + shift,
        )
        for i, p in enumerate(products, start=first)
    ]


def _snapshot_messages(products: list[ProductPayload]) -> list[bytes]:
    parts = [products[i : i + CHUNK] for i in range(0, len(products), CHUNK)]
    return [
        encode(SnapshotChunk(version=1, chunk=k, chunks=len(parts), products=part))
        for k, part in enumerate(parts)
    ]


def _delta(k: int, sizes: Sizes) -> tuple[CatalogDelta, ProductRows]:
    """Delta number k (v k+1 -> k+2): new prices for a block of products, some stock."""
    first = (k * sizes.delta) % max(1, sizes.products - sizes.delta)
    upserts = _payloads(sizes.delta, first=first, shift=k + 1)
    delta = CatalogDelta(from_version=k + 1, to_version=k + 2, upserts=upserts)
    return delta, product_rows(upserts)


def _raw_apply(connection: sqlite3.Connection, rows: ProductRows, version: int) -> None:
    """The same rows through the catalog's staging SQL, one transaction, plain sqlite3."""
    connection.execute("BEGIN IMMEDIATE")
    for statement in catalog_sql._STAGE_TABLES:
        connection.execute(statement)
    connection.executemany(catalog_sql._STAGE_PRODUCT, rows.products)
    connection.executemany(catalog_sql._STAGE_BARCODE, rows.barcodes)
    stamp = {"now": datetime.now(UTC).isoformat()}
    for statement in catalog_sql._MERGE:
        connection.execute(statement, stamp if ":now" in statement else ())
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('catalog_version', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(version),),
    )
    connection.execute("COMMIT")


def _time_snapshot(
    path: Path, messages: list[bytes], expected: int
) -> tuple[float, SqliteDatabase]:
    db = open_ours(path)
    sync = CatalogSync(db, DEVICE, lambda _topic, _data: None)
    gc.collect()
    started = perf_counter()
    outcomes = [sync.handle(message) for message in messages]
    elapsed = perf_counter() - started
    count = db.execute_sql("SELECT COUNT(*) FROM product").fetchone()[0]
    if outcomes[-1] != "applied" or sync.version != 1 or count != expected:
        raise RuntimeError(f"snapshot not applied: {outcomes[-1]}, v{sync.version}, {count}")
    return elapsed, db


def _time_raw(path: Path, rows: ProductRows) -> tuple[float, sqlite3.Connection]:
    create_migrated(path)
    connection = connect_raw(path)
    gc.collect()
    started = perf_counter()
    _raw_apply(connection, rows, 1)
    return perf_counter() - started, connection


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Time snapshots onto fresh databases, then deltas onto the full catalog; raw alike."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    products = _payloads(sizes.products)
    messages = _snapshot_messages(products)
    rows = product_rows(products)
    mb = round(sum(map(len, messages)) / 1e6, 1)
    ours_s: list[float] = []
    raw_s: list[float] = []
    for k in range(sizes.snapshots):
        elapsed, db = _time_snapshot(workdir / f"ours-{k}.db", messages, sizes.products)
        ours_s.append(elapsed)
        if k < sizes.snapshots - 1:
            db.close()
        elapsed, connection = _time_raw(workdir / f"raw-{k}.db", rows)
        raw_s.append(elapsed)
        if k < sizes.snapshots - 1:
            connection.close()
    # Deltas go onto the last databases, each holding the whole catalog at v1.
    sync = CatalogSync(db, DEVICE, lambda _topic, _data: None)
    deltas = [_delta(k, sizes) for k in range(sizes.deltas)]
    ours_ms: list[float] = []
    raw_ms: list[float] = []
    for delta, delta_rows in deltas:
        data = encode(delta)
        started = perf_counter()
        outcome = sync.handle(data)
        ours_ms.append((perf_counter() - started) * 1000)
        if outcome != "applied":
            raise RuntimeError(f"delta {delta.from_version} -> {delta.to_version}: {outcome}")
        started = perf_counter()
        _raw_apply(connection, delta_rows, delta.to_version)
        raw_ms.append((perf_counter() - started) * 1000)
    db.close()
    connection.close()
    snapshot, snapshot_raw = median(ours_s), median(raw_s)
    delta_med, delta_raw = median(ours_ms), median(raw_ms)
    return [
        Row(
            NAME,
            "snapshot",
            snapshot,
            "s",
            target=Target(3.0, at_most=True),
            baseline=snapshot_raw,
            baseline_name="raw sqlite3 executemany of the same rows, one transaction",
            ratio=snapshot / snapshot_raw,
            note=(
                f"{sizes.products} products in {len(messages)} chunks ({mb} MB JSON) through "
                "CatalogSync.handle onto a fresh migrated db: decode, validate, durable "
                f"staging, one apply transaction; median of {sizes.snapshots} (ratio info)"
            ),
            details={"ours": summary_s(ours_s), "raw": summary_s(raw_s), "json_mb": mb},
        ),
        Row(
            NAME,
            "delta",
            delta_med,
            "ms",
            target=Target(50.0, at_most=True),
            baseline=delta_raw,
            baseline_name="raw sqlite3 executemany of the same rows, one transaction",
            ratio=delta_med / delta_raw,
            note=(
                f"{sizes.delta}-product deltas (new prices, every 10th a stock correction) "
                f"onto the {sizes.products}-product catalog; median of {sizes.deltas}"
            ),
            details={
                "ours_p90_ms": round(percentile(ours_ms, 90), 2),
                "raw_p90_ms": round(percentile(raw_ms, 90), 2),
            },
        ),
    ]
