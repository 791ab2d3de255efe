"""CSV catalog import: import_catalog_csv and the CLI against raw sqlite3 executemany."""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from appliance.catalog_import import import_catalog_csv, products_to_csv
from appliance.core.catalog import Product
from appliance.settings import StoreSettings
from appliance.store import catalog as catalog_sql
from appliance.store.catalog import SqliteCatalog, staged_rows
from bench import fixtures
from bench.databases import connect_raw, create_migrated, open_ours
from bench.result import Row, Target
from bench.stats import median, summary_s

NAME = "csv_import"
CLI_TIMEOUT_S = 600


@dataclass(frozen=True, slots=True)
class Sizes:
    """Products in the file and how many timed imports each side gets."""

    products: int
    repeats: int


FULL = Sizes(products=100_000, repeats=3)
QUICK = Sizes(products=2_000, repeats=1)


@dataclass(frozen=True, slots=True)
class RawRows:
    """The parameters of every statement SqliteCatalog.upsert runs, computed before timing."""

    products: list[tuple[Any, ...]]
    barcodes: list[tuple[str, str]]
    now: str


def raw_rows(products: list[tuple[Product, int | None]]) -> RawRows:
    """What the import writes, as plain tuples."""
    staged, barcodes = staged_rows(products)
    return RawRows(products=staged, barcodes=barcodes, now=datetime.now(UTC).isoformat())


def import_raw(connection: sqlite3.Connection, rows: RawRows) -> None:
    """The upsert's statements (stage, then set-based merge), in one transaction."""
    # SqliteCatalog's module-level SQL is reused on purpose: the baseline runs the same text.
    connection.execute("BEGIN IMMEDIATE")
    for statement in catalog_sql._STAGE_TABLES:
        connection.execute(statement)
    connection.executemany(catalog_sql._STAGE_PRODUCT, rows.products)
    connection.executemany(catalog_sql._STAGE_BARCODE, rows.barcodes)
    for statement in catalog_sql._MERGE:
        connection.execute(statement, {"now": rows.now} if ":now" in statement else ())
    connection.execute(catalog_sql._BUMP_VERSION)
    connection.execute("COMMIT")


def _time_ours(csv_path: Path, db_path: Path, expected: int) -> float:
    db = open_ours(db_path)
    try:
        gc.collect()
        started = perf_counter()
        report = import_catalog_csv(SqliteCatalog(db), csv_path, StoreSettings())
        elapsed = perf_counter() - started
    finally:
        db.close()
    if report.imported != expected or report.errors:
        raise RuntimeError(f"imported {report.imported} of {expected}: {report.errors[:3]}")
    return elapsed


def _time_raw(rows: RawRows, db_path: Path) -> float:
    create_migrated(db_path)
    connection = connect_raw(db_path)
    try:
        gc.collect()
        started = perf_counter()
        import_raw(connection, rows)
        elapsed = perf_counter() - started
        count = connection.execute("SELECT COUNT(*) FROM barcode").fetchone()[0]
    finally:
        connection.close()
    if count != len(rows.barcodes):
        raise RuntimeError(f"raw import wrote {count} barcodes of {len(rows.barcodes)}")
    return elapsed


def _time_cli(csv_path: Path, workdir: Path, expected: int) -> float:
    config = workdir / "appliance.toml"
    config.write_text(
        f'[device]\nid = "bench-0001"\n\n[database]\npath = "{workdir / "cli.db"}"\n',
        encoding="utf-8",
    )
    command = [
        str(Path(sys.executable).with_name("appliance")),
        *("catalog", "import", str(csv_path), "--config", str(config)),
    ]
    started = perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False
    )
    elapsed = perf_counter() - started
    if done.returncode != 0 or f"imported {expected} of {expected}" not in done.stdout:
        raise RuntimeError(f"CLI import failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Import the same file through the API (repeated) and the CLI (once); raw for comparison."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    products = [(fixtures.product(i), fixtures.stock_of(i)) for i in range(sizes.products)]
    csv_path = workdir / "catalog.csv"
    csv_path.write_text(products_to_csv(iter(products)), encoding="utf-8")
    rows = raw_rows(products)
    ours_s: list[float] = []
    raw_s: list[float] = []
    for k in range(sizes.repeats):
        ours_s.append(_time_ours(csv_path, workdir / f"ours-{k}.db", sizes.products))
        raw_s.append(_time_raw(rows, workdir / f"raw-{k}.db"))
    cli_s = _time_cli(csv_path, workdir, sizes.products)
    ours, raw = median(ours_s), median(raw_s)
    file_mb = round(csv_path.stat().st_size / 1e6, 2)
    return [
        Row(
            NAME,
            "api",
            ours,
            "s",
            target=Target(5.0, at_most=True),
            baseline=raw,
            baseline_name="raw sqlite3 executemany, same statements and rows",
            ratio=ours / raw,
            note=(
                f"import_catalog_csv of {sizes.products} products ({file_mb} MB CSV) into a "
                "fresh migrated db, StoreSettings() defaults; median of "
                f"{sizes.repeats} run(s); raw = upsert's statements with pre-parsed rows "
                "(ratio info only)"
            ),
            details={"ours": summary_s(ours_s), "raw": summary_s(raw_s), "csv_mb": file_mb},
        ),
        Row(
            NAME,
            "cli",
            cli_s,
            "s",
            baseline=ours,
            baseline_name="import_catalog_csv in-process median",
            ratio=cli_s / ours,
            note="`appliance catalog import FILE --config CFG` as a subprocess, run once (info)",
        ),
    ]
