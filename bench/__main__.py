"""`python -m bench`: run the benchmarks, print the table, save the JSON report."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    api_catalog,
    barcode_lookup,
    card_payment,
    catalog_apply,
    catalog_memory,
    csv_import,
    hub_ingest,
    picture_memory,
    receipt_print,
    sale_commit,
    sales_drain,
    scan_latency,
    screen_frames,
    screen_memory,
    screen_scan,
    screen_startup,
    startup,
    update_download,
)
from bench.report import RESULTS_DIR, build_report, write_report
from bench.result import Row
from bench.table import print_table
from bench.workdir import describe_environment, scratch_dir

Benchmark = Callable[..., list[Row]]
BENCHMARKS: dict[str, Benchmark] = {
    sale_commit.NAME: sale_commit.run,
    barcode_lookup.NAME: barcode_lookup.run,
    csv_import.NAME: csv_import.run,
    startup.NAME: startup.run,
    scan_latency.NAME: scan_latency.run,
    receipt_print.NAME: receipt_print.run,
    catalog_apply.NAME: catalog_apply.run,
    sales_drain.NAME: sales_drain.run,
    hub_ingest.NAME: hub_ingest.run,
    api_catalog.NAME: api_catalog.run,
    catalog_memory.NAME: catalog_memory.run,
    screen_scan.NAME: screen_scan.run,
    screen_startup.NAME: screen_startup.run,
    screen_memory.NAME: screen_memory.run,
    screen_frames.NAME: screen_frames.run,
    card_payment.NAME: card_payment.run,
    picture_memory.NAME: picture_memory.run,
    update_download.NAME: update_download.run,
}

log = logging.getLogger("bench")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: --quick, --only NAME (repeatable), --results-dir."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where the JSON reports and scratch databases go (default: bench/results)",
    )
    return parser.parse_args(argv)


def _progress_to_stderr() -> None:
    """Progress lines on stderr; the root logger is left alone so the appliance stays quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bench: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; 0 even when a target is missed, 1 when one crashed."""
    args = parse_args(argv)
    _progress_to_stderr()
    started = datetime.now(UTC)
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    rows: list[Row] = []
    with scratch_dir(args.results_dir) as scratch:
        environment = describe_environment(scratch)
        for name in names:
            log.info("running %s%s", name, " (quick)" if args.quick else "")
            try:
                rows += BENCHMARKS[name](scratch / name, quick=args.quick)
            except Exception as err:
                log.exception("%s crashed", name)
                rows.append(Row.failed(name, f"{type(err).__name__}: {err}"))
    title = f"appliance benchmarks {started:%Y-%m-%d %H:%M:%SZ}" + (
        " (quick)" if args.quick else ""
    )
    print_table(rows, title)
    report = build_report(rows, started, args.quick, environment)
    path = write_report(report, args.results_dir, started)
    log.info("wrote %s and latest.json", path)
    return 1 if any(row.status == "ERROR" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
