"""Resident memory of the in-memory catalog: MemoryCatalog against Product objects in dicts."""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from appliance.store.catalog import SqliteCatalog
from appliance.store.memory_catalog import MemoryCatalog
from bench import fixtures
from bench.databases import open_ours
from bench.fresh_process import json_from_module
from bench.result import Row, Target

NAME = "catalog_memory"
KIB_PER_MB = 1024
CHILD_TIMEOUT_S = 300


@dataclass(frozen=True, slots=True)
class Sizes:
    """Products in the catalog."""

    products: int


FULL = Sizes(products=100_000)
QUICK = Sizes(products=2_000)


def resident_kib() -> int:
    """This process's resident set (VmRSS) in KiB, after a full collection."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure_ours(path: Path) -> dict[str, Any]:
    """VmRSS around MemoryCatalog.refresh() and around a background reload."""
    db = open_ours(path)
    catalog = SqliteCatalog(db)
    catalog.version()
    before = resident_kib()
    memory = MemoryCatalog(catalog, recheck_seconds=0)
    started = perf_counter()
    products = memory.refresh()
    load_s = perf_counter() - started
    loaded = resident_kib()
    # Writing one product raises the catalog version; the next lookup reloads it all.
    catalog.upsert([(fixtures.product(0), fixtures.stock_of(0))])
    memory.by_sku(fixtures.product(0).sku)
    memory.wait_for_reload()
    return {
        "products": products,
        "before_kib": before,
        "loaded_kib": loaded,
        "reloaded_kib": resident_kib(),
        "load_s": load_s,
    }


def measure_dicts(path: Path) -> dict[str, Any]:
    """VmRSS around loading every Product into dicts by SKU and by barcode."""
    catalog = SqliteCatalog(open_ours(path))
    catalog.version()
    before = resident_kib()
    started = perf_counter()
    by_sku = {p.sku: p for p in catalog.all_products()}
    by_barcode = {key: p for p in by_sku.values() for key in p.barcodes}
    load_s = perf_counter() - started
    loaded = resident_kib()
    return {
        "products": len(by_sku),
        "barcodes": len(by_barcode),
        "before_kib": before,
        "loaded_kib": loaded,
        "load_s": load_s,
    }


def _in_fresh_process(path: Path, holder: str) -> dict[str, Any]:
    """Run measure_<holder>(path) in a new interpreter: nothing else shares its heap."""
    return json_from_module("bench.catalog_memory", [str(path), holder], timeout_s=CHILD_TIMEOUT_S)


def _mb(kib: int) -> float:
    return kib / KIB_PER_MB


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """The catalog's resident memory, each way measured in a fresh process."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "catalog.db"
    db = open_ours(path)
    try:
        SqliteCatalog(db).upsert(
            (fixtures.product(i), fixtures.stock_of(i)) for i in range(sizes.products)
        )
    finally:
        db.close()
    ours = _in_fresh_process(path, "ours")
    dicts = _in_fresh_process(path, "dicts")
    snapshot = _mb(ours["loaded_kib"] - ours["before_kib"])
    baseline = _mb(dicts["loaded_kib"] - dicts["before_kib"])
    reloaded = _mb(ours["reloaded_kib"] - ours["before_kib"])
    return [
        Row(
            NAME,
            "snapshot",
            snapshot,
            "MB",
            target=Target(30.0, at_most=True),
            baseline=baseline,
            baseline_name="Product objects in dicts by SKU and barcode",
            ratio=snapshot / baseline if baseline > 0 else None,
            note=(
                f"VmRSS growth of a fresh process over MemoryCatalog.refresh() of "
                f"{ours['products']} products (encoded records, key and search indexes), "
                "the database already open; baseline = the same catalog as Product objects "
                "in two dicts (no search index), read on the main thread as the catalog "
                "once was; ratio = ours/baseline"
            ),
            details={"ours": ours, "dicts": dicts},
        ),
        Row(
            NAME,
            "after a reload",
            reloaded,
            "MB",
            note="VmRSS growth after a catalog change was loaded in the background (info)",
        ),
        Row(
            NAME,
            "load",
            ours["load_s"],
            "s",
            baseline=dicts["load_s"],
            baseline_name="Product objects in dicts",
            ratio=ours["load_s"] / dicts["load_s"] if dicts["load_s"] > 0 else None,
            note="MemoryCatalog.refresh() in the measured process (info)",
        ),
    ]


if __name__ == "__main__":
    _measurements = {"ours": measure_ours, "dicts": measure_dicts}
    print(json.dumps(_measurements[sys.argv[2]](Path(sys.argv[1]))))
