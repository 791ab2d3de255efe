"""`python -m bench --quick` runs end to end; no timing target is asserted here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# Every target the issues name; a benchmark dropped from bench/__main__.py fails here.
BENCHMARKS = (
    "sale_commit",
    "barcode_lookup",
    "csv_import",
    "startup",
    "scan_latency",
    "receipt_print",
    "catalog_apply",
    "sales_drain",
    "hub_ingest",
    "catalog_memory",
    "screen_scan",
    "screen_startup",
    "screen_memory",
    "screen_frames",
    "card_payment",
    "picture_memory",
    "api_catalog",
    "update_download",
)


def _bench(results: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run `python -m bench --quick` into `results`; returns the process and latest.json."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(results), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,  # the quick run starts the kiosk app and processes several times
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done, json.loads((results / "latest.json").read_text(encoding="utf-8"))


# Every benchmark once, quick: about three minutes of one worker, the longest test of the
# suite, so it runs with `make soak`; `make test` keeps the --only run of one benchmark.
@pytest.mark.soak
def test_quick_bench_prints_table_and_writes_json(tmp_path: Path) -> None:
    """Exit 0, every benchmark in the table, and a JSON report with numeric measurements."""
    done, latest = _bench(tmp_path)
    for column in ("benchmark", "measured", "target", "baseline", "ratio", "pass/fail"):
        assert column in done.stdout
    for name in BENCHMARKS:
        assert name in done.stdout
    stamped = [p for p in tmp_path.glob("*.json") if p.name != "latest.json"]
    assert len(stamped) == 1
    assert json.loads(stamped[0].read_text(encoding="utf-8")) == latest
    assert latest["quick"] is True
    results = latest["results"]
    assert {entry["benchmark"] for entry in results} == set(BENCHMARKS)
    for entry in results:
        measured = entry["measured"]
        assert isinstance(measured, int | float) and math.isfinite(measured), entry
        assert entry["status"] in ("PASS", "FAIL", "info")
    assert not list(tmp_path.glob("scratch-*")), "scratch databases were left behind"


def test_only_runs_the_named_benchmark(tmp_path: Path) -> None:
    """--only NAME limits the run (and the report) to that benchmark."""
    _, latest = _bench(tmp_path, "--only", "sale_commit")
    assert {entry["benchmark"] for entry in latest["results"]} == {"sale_commit"}


def test_every_benchmark_the_issues_name_is_registered() -> None:
    """The quick run of all of them is soak; that none was dropped is checked here."""
    from bench import __main__ as bench_main

    assert set(BENCHMARKS) == set(bench_main.BENCHMARKS)
