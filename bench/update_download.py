"""Update download: a bundle's size, and what its download costs the till while it sells.

A synthetic root image is built into a signed bundle, added to a hub database and served
by `appliance-hub bundles` over TLS with client certificates on 127.0.0.1. The device's
own download (the updater's https_fetch: HttpsChunkSource, download, verify_slot) runs
into a DirectorySlots slot on a thread made by start_low_priority_thread, as the updater
runs it, in the process that sells: sale commits here, the kiosk app in a screen child.
Blocks with the download running alternate with blocks without it, in the same run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.store.catalog import SqliteCatalog
from appliance.store.documents import SalesLedger
from bench import fixtures, sale_commit, screen_app, screen_scan
from bench.databases import connect_raw, open_ours
from bench.result import Row, Target
from bench.sale_data import RECEIPT_PREFIX, build_drafts, raw_sale
from bench.screen_child import run_in_child
from bench.stats import percentile, summary_us
from bench.update_device import Downloads, Fetching
from bench.update_release import (
    IMAGE_NOTE,
    Release,
    bundle_server,
    make_pki,
    make_release,
    write_root_image,
)
from bench.workdir import filesystem_of

NAME = "update_download"
MIB = 1024 * 1024
NS_PER_MS = 1e6
KEEPS_SELLING = Target(1.5, at_most=True, on_ratio=True)
CHILD_TIMEOUT_S = 900.0
PRODUCTS = 30
BLOCKS_NOTE = (
    "Blocks with the download running alternate with blocks without it (off/on, then on/off) "
    "in one process and one run. The download is the device's own: the updater's https_fetch "
    "(HttpsChunkSource, download, verify_slot) into a DirectorySlots slot on a "
    "start_low_priority_thread thread (idle I/O class, nice 19), from `appliance-hub bundles` "
    "on 127.0.0.1 over TLS with a fleet client certificate; started again from chunk 0 "
    "whenever it completes, so it runs through every 'on' block. The slot is a file on the "
    "database's file system (details.io_scheduler: the disk's scheduler, which the idle class "
    "needs); on a Pi it is a partition of its own on the same card. Target: ratio <= 1.5 is "
    "our own bar for 'keeps selling' while a download runs"
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """Image size, off/on rounds of sale commits and of scans, and the screen's catalog."""

    image_mib: int
    sale_rounds: int
    sale_blocks: int  # sale_commit blocks per phase
    sale_per_block: int
    scan_rounds: int
    scans: int  # timed scans per phase
    products: int
    warmup: int


FULL = Sizes(
    image_mib=256,
    sale_rounds=3,
    sale_blocks=3,
    sale_per_block=1000,
    scan_rounds=2,
    scans=150,
    products=screen_scan.FULL.products,
    warmup=screen_scan.FULL.warmup,
)
# A smaller image keeps the quick run's bundle build short; the download repeats anyway.
QUICK = Sizes(
    image_mib=32,
    sale_rounds=1,
    sale_blocks=2,
    sale_per_block=100,
    scan_rounds=1,
    scans=10,
    products=screen_scan.QUICK.products,
    warmup=screen_scan.QUICK.warmup,
)


def io_scheduler(path: Path) -> str:
    """The I/O scheduler line of the disk holding `path` ("none [mq-deadline] bfq"), or "?"."""
    device = path.stat().st_dev
    node = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    try:
        node = node.resolve()
        if (node / "partition").exists():
            node = node.parent
        return (node / "queue" / "scheduler").read_text().strip()
    except OSError:
        return "?"


def _alternating(rounds: int) -> Iterator[bool]:
    """off, on, then on, off, ...: neither side always goes first."""
    for round_ in range(rounds):
        yield from ((False, True) if round_ % 2 == 0 else (True, False))


def _maybe(downloads: Downloads, downloading: bool) -> contextlib.AbstractContextManager[None]:
    return downloads.running() if downloading else contextlib.nullcontext()


# -- sale commits, in this process -------------------------------------------------------------


def _sales(workdir: Path, downloads: Downloads, sizes: Sizes) -> dict[str, list[int]]:
    """Commit latencies (ns) with and without the download, timed by sale_commit.measure."""
    products = [p for p in map(fixtures.product, range(PRODUCTS * 2)) if not p.age_restriction]
    products = products[:PRODUCTS]
    per_phase = sale_commit.WARMUP + sizes.sale_blocks * sizes.sale_per_block
    drafts = build_drafts(products, per_phase * 2 * sizes.sale_rounds)
    raw_sales = [raw_sale(d, seq) for seq, d in enumerate(drafts, start=1)]
    ours_path, raw_path = workdir / "ours.db", workdir / "raw.db"
    for path in (ours_path, raw_path):
        db = open_ours(path)
        SqliteCatalog(db).upsert((p, sale_commit.START_STOCK) for p in products)
        db.close()
    ours_db, raw = open_ours(ours_path), connect_raw(raw_path)
    blocks = sale_commit.Sizes(sizes.sale_blocks, sizes.sale_per_block)
    samples: dict[str, list[int]] = {"off": [], "on": [], "raw_off": [], "raw_on": []}
    try:
        ledger = SalesLedger(ours_db, RECEIPT_PREFIX)
        for phase, downloading in enumerate(_alternating(sizes.sale_rounds)):
            lo, hi = phase * per_phase, (phase + 1) * per_phase
            with _maybe(downloads, downloading):
                ours, baseline = sale_commit.measure(
                    ledger, raw, drafts[lo:hi], raw_sales[lo:hi], blocks
                )
            side = "on" if downloading else "off"
            samples[side] += ours.latencies
            samples[f"raw_{side}"] += baseline.latencies
    finally:
        ours_db.close()
        raw.close()
    return samples


# -- scans to frames, in the screen child ------------------------------------------------------


def scans_here(width: int, height: int, *, sizes: dict[str, int], fetching: dict[str, str]) -> Any:
    """In bench.screen_child: scan-to-frame ns with and without the download in the app."""
    chosen = Sizes(**sizes)
    downloads = Downloads(Fetching(**fetching))
    per_phase = chosen.scans + chosen.warmup
    numbers = screen_scan._codes(chosen.products, per_phase * 2 * chosen.scan_rounds)
    samples: dict[str, list[int]] = {"off": [], "on": []}
    with screen_scan.shop(chosen.products, (width, height)) as ready:
        for phase, downloading in enumerate(_alternating(chosen.scan_rounds)):
            mine = numbers[phase * per_phase : (phase + 1) * per_phase]
            with _maybe(downloads, downloading):
                wall, _cpu = screen_scan._time(ready.scanning, mine, chosen.warmup)
            samples["on" if downloading else "off"] += wall
    return {**samples, "download": downloads.stats()}


# -- the run -----------------------------------------------------------------------------------


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Build and serve a release, then time sales and scans with and without its download."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()  # the bundle server runs in its own folder: absolute paths
    image = workdir / "root.img"
    kinds = write_root_image(image, sizes.image_mib * MIB)
    pki = make_pki(workdir / "pki")
    release = make_release(workdir / "hub", image)
    image.unlink()  # the hub keeps its own copy of the payload
    with bundle_server(workdir / "hub", release, pki) as url:
        downloads = Downloads(Fetching.of(release, pki, url, workdir / "slots"))
        alone_s = downloads.whole()
        before = downloads.stats()
        sales = _sales(workdir, downloads, sizes)
        child = asdict(Fetching.of(release, pki, url, workdir / "slots-child"))
        arguments = {"sizes": asdict(sizes), "fetching": child}
        screen = run_in_child(NAME, screen_app.PI_DISPLAY, arguments, CHILD_TIMEOUT_S)
    during = {
        key: downloads.stats()[key] - before[key] + screen["download"][key]
        for key in ("payload_bytes", "busy_s", "completed_runs")
    }
    facts = {
        "image_mib": sizes.image_mib,
        "image_bytes_by_kind": kinds,
        "payload_bytes": release.manifest.payload_size,
        "bundle_bytes": release.bundle.stat().st_size,
        "chunks": sum(len(part.chunks) for part in release.manifest.parts),
        "build_s": round(release.build_s, 2),
    }
    return [
        *_bundle_rows(sizes, release, facts),
        _latency_row(
            "sale commit p99 while downloading",
            sales["on"],
            sales["off"],
            "sale_commit's SalesLedger.commit timing (sale_commit.measure: ours and raw sqlite3 "
            "in alternating blocks, WAL, synchronous=FULL, real disk); p99 of ours",
            {
                "with_download": summary_us(sales["on"]),
                "without_download": summary_us(sales["off"]),
                "raw_sqlite3_with_download": summary_us(sales["raw_on"]),
                "raw_sqlite3_without_download": summary_us(sales["raw_off"]),
                "rounds": sizes.sale_rounds,
                "database_filesystem": filesystem_of(workdir),
                # The idle I/O class is honoured by mq-deadline and BFQ, not by "none".
                "io_scheduler": io_scheduler(workdir),
            },
        ),
        _latency_row(
            "scan to frame p99 while downloading",
            screen["on"],
            screen["off"],
            "screen_scan's unpaced scan to frame (kiosk app in a child at 800x480, "
            f"{sizes.products} products; the download runs in the app's own process)",
            {
                "with_download": summary_us(screen["on"]),
                "without_download": summary_us(screen["off"]),
                "rounds": sizes.scan_rounds,
                "products": sizes.products,
                "download_in_child": screen["download"],
                "io_scheduler": io_scheduler(workdir),
            },
        ),
        *_throughput_rows(release, alone_s, during, downloads),
    ]


def _bundle_rows(sizes: Sizes, release: Release, facts: dict[str, Any]) -> list[Row]:
    note = IMAGE_NOTE.format(mib=sizes.image_mib)
    bundle_bytes = facts["bundle_bytes"]
    return [
        Row(NAME, "bundle size", bundle_bytes / MIB, "MiB", note=note, details=facts),
        Row(
            NAME,
            "bundle / image",
            bundle_bytes / (sizes.image_mib * MIB),
            "of image",
            note="the bundle file's size over the root image's (info); " + note,
            details=facts,
        ),
        Row(
            NAME,
            "bundle build",
            release.build_s,
            "s",
            note="build_bundle wall time on this machine, one thread (info); " + note,
            details=facts,
        ),
    ]


def _latency_row(
    metric: str, on: list[int], off: list[int], how: str, details: dict[str, Any]
) -> Row:
    mine, theirs = percentile(on, 99) / NS_PER_MS, percentile(off, 99) / NS_PER_MS
    return Row(
        NAME,
        metric,
        mine,
        "ms",
        target=KEEPS_SELLING,
        baseline=theirs,
        baseline_name="the same, no download, this run",
        ratio=mine / theirs,
        note=f"{how}. {BLOCKS_NOTE}",
        details=details,
    )


def _throughput_rows(
    release: Release, alone_s: float, during: dict[str, Any], downloads: Downloads
) -> list[Row]:
    payload, image = release.manifest.payload_size, sum(p.size for p in release.manifest.parts)
    alone = {
        "seconds": round(alone_s, 3),
        "payload_bytes": payload,
        "image_mib_per_s": round(image / MIB / alone_s, 2),
        "io_priority_class_level": downloads.io_priority,
    }
    busy = during["busy_s"] or float("nan")
    return [
        Row(
            NAME,
            "download alone",
            payload / MIB / alone_s,
            "MiB/s",
            note=(
                "payload MiB per second of one whole download (fetch, check, xz, write, fsync "
                "every 16 MiB, read-back sha256) with nothing else running, at a kiosk's "
                "default pace ([update] download_kib_s = 2048) (info)"
            ),
            details=alone,
        ),
        Row(
            NAME,
            "download while selling",
            during["payload_bytes"] / MIB / busy,
            "MiB/s",
            note=(
                "payload MiB per second of download time during the 'on' blocks of both "
                "measurements, at idle I/O class, nice 19 and the default pace (info)"
            ),
            details=during,
        ),
    ]
