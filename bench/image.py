"""`python -m bench.image`: the image's size, build and boot times beside the previous run's."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR, build_report
from bench.result import Row
from bench.table import print_table

NAME = "image"
BUILD_DIR = RESULTS_DIR.parents[1] / "build"
BUILD_STATS = Path("image", "build-stats.json")  # under the build dir; image/build writes it
TIMINGS = Path("image-test", "timings.json")  # under the build dir; the boot test writes it
PREFIX = "image-"  # apart from the timing run's <timestamp>.json and latest.json
BYTES_PER_MB = 1e6
SIZE_NOTE = "The .img.xz as image/build wrote it (xz_bytes); the raw .img size is in details."
BUILD_NOTE = (
    "image/build start to the .img.xz written (seconds_total). Cold = the apt and wheel "
    "caches were empty at the start; each kind is beside the last run of the same kind."
)
# timings.json key, the row's metric, what it measures, its unit. All under qemu-system-aarch64
# with TCG (no KVM): slower than a Pi, so the rows compare runs, not the device.
BOOT_ROWS = (
    (
        "first_boot_to_ready_s",
        "boot to READY=1 (qemu TCG), first boot",
        "Kernel start to appliance.service READY=1 on the first boot, provisioning included.",
        "s",
    ),
    (
        "reboot_to_ready_s",
        "boot to READY=1 (qemu TCG), after reboot",
        "Kernel start to appliance.service READY=1 after the fleet's reboot.",
        "s",
    ),
    (
        "first_boot_to_kiosk_frame_s",
        "boot to first kiosk frame (qemu TCG)",
        "qemu start to the welcome screen on the emulated display, first boot.",
        "s",
    ),
    (
        "update_reboot_to_ready_s",
        "update: reboot to READY=1 on the new slot (qemu TCG)",
        "Kernel start of the try boot of the new slot to its appliance.service READY=1.",
        "s",
    ),
    (
        "update_try_boot_to_committed_s",
        "update: try boot to committed at the hub (qemu TCG)",
        "From the harness starting the try boot to the hub holding the device's commit.",
        "s",
    ),
    (
        "update_bundle_bytes",
        "update: bundle size (xz -1)",
        "The test's bundle of the image's slot A (boot and root partitions), xz preset 1.",
        "bytes",
    ),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: --build-dir, --results-dir."""
    parser = argparse.ArgumentParser(prog="python -m bench.image", description=__doc__)
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=BUILD_DIR,
        help=f"where {BUILD_STATS} and {TIMINGS} are (default: build)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where the JSON reports go (default: bench/results)",
    )
    return parser.parse_args(argv)


def _read(path: Path, command: str) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The file's JSON and where it came from; None, saying so, when it is missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        print(f"bench.image: {path} is missing; `{command}` writes it", file=sys.stderr)
        return None
    # The digest tells a new measurement from the same file read again by a second run.
    source = {"source": str(path), "source_sha256": hashlib.sha256(data).hexdigest()}
    try:
        return json.loads(data), source
    except ValueError as err:
        raise SystemExit(f"bench.image: {path} is not JSON: {err}") from err


def build_rows(stats: dict[str, Any], source: dict[str, str]) -> list[Row]:
    """The compressed size and the build time, named cold or warm."""
    kept = ("version", "finished_at", "cold", "seconds_to_raw", "raw_bytes")
    details = {**{key: stats[key] for key in kept}, **source}
    kind = "cold" if stats["cold"] else "warm"
    return [
        Row(
            NAME,
            "compressed size",
            stats["xz_bytes"] / BYTES_PER_MB,
            "MB",
            note=SIZE_NOTE,
            details=details,
        ),
        Row(
            NAME,
            f"build time, {kind}",
            stats["seconds_total"],
            "s",
            note=BUILD_NOTE,
            details=details,
        ),
    ]


def boot_rows(timings: dict[str, Any], source: dict[str, str]) -> list[Row]:
    """One row per boot timing the test recorded; a run that stopped early has fewer."""
    return [
        Row(NAME, metric, float(timings[key]), unit, note=note, details=source)
        for key, metric, note, unit in BOOT_ROWS
        if isinstance(timings.get(key), int | float) and math.isfinite(timings[key])
    ]


def earlier_reports(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """The image reports in `folder` with their file names, newest first."""
    reports = []
    for path in sorted(folder.glob(f"{PREFIX}*.json"), reverse=True):
        try:
            reports.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as err:
            print(f"bench.image: skipping {path}: {err}", file=sys.stderr)
    return reports


def with_previous(row: Row, reports: list[tuple[str, dict[str, Any]]]) -> Row:
    """The row with the newest earlier value of the same metric, from another measurement."""
    for name, report in reports:
        for entry in report.get("results", []):
            same = entry.get("benchmark") == NAME and entry.get("metric") == row.metric
            again = entry.get("details", {}).get("source_sha256") == row.details["source_sha256"]
            if same and not again and entry.get("measured") is not None:
                previous = float(entry["measured"])
                return dataclasses.replace(
                    row,
                    baseline=previous,
                    baseline_name=f"previous run ({name})",
                    ratio=row.measured / previous if row.measured and previous else None,
                )
    return row


def write_image_report(report: dict[str, Any], folder: Path, started: datetime) -> Path:
    """Write image-<UTC timestamp>.json as report.write_report writes its reports.

    Not write_report itself: its latest.json is the timing run's, which this must not replace.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{PREFIX}{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Report what the build and the boot test measured; 1 when neither file is there."""
    args = parse_args(argv)
    started = datetime.now(UTC)
    stats = _read(args.build_dir / BUILD_STATS, "make image")
    timings = _read(args.build_dir / TIMINGS, "make image-test")
    if stats is None and timings is None:
        return 1
    rows = (build_rows(*stats) if stats else []) + (boot_rows(*timings) if timings else [])
    reports = earlier_reports(args.results_dir)
    rows = [with_previous(row, reports) for row in rows]
    version = f" {stats[0]['version']}" if stats else ""
    print_table(rows, f"appliance image{version} {started:%Y-%m-%d %H:%M:%SZ}")
    environment = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "build_dir": str(args.build_dir),
    }
    report = build_report(rows, started, False, environment)
    path = write_image_report(report, args.results_dir, started)
    print(f"bench.image: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
