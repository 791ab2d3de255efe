"""Barcode lookup in a large catalog: find_product against a raw indexed SELECT."""

from __future__ import annotations

import gc
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter, perf_counter_ns

from appliance.core.barcode import normalize_gtin
from appliance.core.catalog import find_product
from appliance.store.catalog import SqliteCatalog
from appliance.store.memory_catalog import MemoryCatalog
from bench import fixtures
from bench.databases import open_ours
from bench.result import Row, Target
from bench.stats import median, summary_us

NAME = "barcode_lookup"
RAW_SQL = "SELECT sku FROM barcode WHERE key = ?"
SEED = 20_240_601
NS_PER_US = 1_000


@dataclass(frozen=True, slots=True)
class Sizes:
    """Catalog size, lookups per side and lookups per alternating block."""

    products: int
    lookups: int
    per_block: int


FULL = Sizes(products=100_000, lookups=20_000, per_block=1_000)
QUICK = Sizes(products=2_000, lookups=2_000, per_block=500)


def _time_each(call: Callable[[str], object], codes: list[str]) -> list[int]:
    samples = []
    for code in codes:
        t0 = perf_counter_ns()
        call(code)
        samples.append(perf_counter_ns() - t0)
    return samples


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Look up random existing EAN-13s through find_product and through plain SQL."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "catalog.db"
    db = open_ours(path)
    started = perf_counter()
    SqliteCatalog(db).upsert(
        (fixtures.product(i), fixtures.stock_of(i)) for i in range(sizes.products)
    )
    fill_s = perf_counter() - started
    rng = random.Random(SEED)
    scans = [fixtures.ean13(rng.randrange(sizes.products)) for _ in range(sizes.lookups)]
    keys = [normalize_gtin(code) for code in scans]
    catalog = SqliteCatalog(db)
    memory = MemoryCatalog(catalog)
    started = perf_counter()
    memory.refresh()
    load_s = perf_counter() - started
    raw = sqlite3.connect(path, isolation_level=None)

    def ours(code: str) -> object:
        return find_product(memory, code)

    def sql_path(code: str) -> object:
        return find_product(catalog, code)

    def baseline(key: str) -> object:
        return raw.execute(RAW_SQL, (key,)).fetchone()

    try:
        if find_product(catalog, scans[0]).product.barcodes != (keys[0],):
            raise RuntimeError("find_product returned the wrong product")
        # Warm both paths (page cache, statement caches) before anything counts.
        _time_each(ours, scans[: sizes.per_block])
        _time_each(baseline, keys[: sizes.per_block])
        ours_ns: list[int] = []
        raw_ns: list[int] = []
        sql_ns = _time_each(sql_path, scans[: sizes.lookups // 4])
        for block, lo in enumerate(range(0, sizes.lookups, sizes.per_block)):
            hi = lo + sizes.per_block
            gc.collect()
            if block % 2 == 0:
                ours_ns += _time_each(ours, scans[lo:hi])
                raw_ns += _time_each(baseline, keys[lo:hi])
            else:
                raw_ns += _time_each(baseline, keys[lo:hi])
                ours_ns += _time_each(ours, scans[lo:hi])
    finally:
        raw.close()
        db.close()
    ours_median = median(ours_ns) / NS_PER_US
    raw_median = median(raw_ns) / NS_PER_US
    sql_median = median(sql_ns) / NS_PER_US
    return [
        Row(
            NAME,
            "median",
            ours_median,
            "us",
            target=Target(20.0, at_most=True),
            baseline=raw_median,
            baseline_name=f"raw sqlite3 {RAW_SQL}",
            ratio=ours_median / raw_median,
            note=(
                f"find_product(MemoryCatalog, ean13_text), what the checkout runs, over "
                f"{sizes.lookups} random existing codes in a {sizes.products}-product catalog "
                "(parse, check digit, lookup); raw = one indexed SELECT on the same file; "
                "alternating blocks; ratio = ours/raw median (slowdown)"
            ),
            details={
                "products": sizes.products,
                "catalog_fill_s": round(fill_s, 3),
                "memory_load_s": round(load_s, 3),
                "ours": summary_us(ours_ns),
                "raw": summary_us(raw_ns),
            },
        ),
        Row(
            NAME,
            "median via SQL",
            sql_median,
            "us",
            baseline=raw_median,
            baseline_name=f"raw sqlite3 {RAW_SQL}",
            ratio=sql_median / raw_median,
            note="find_product(SqliteCatalog(db), code): the per-query path tools use (info)",
            details={"sql": summary_us(sql_ns)},
        ),
        Row(
            NAME,
            "catalog load",
            load_s,
            "s",
            note=f"MemoryCatalog.refresh() of {sizes.products} products, before READY=1 (info)",
        ),
    ]
