"""Resident memory of product pictures: a catalog applied with them, a browse page showing them.

Pictures live on disk; the device keeps only their file names. Two measurements, each way
in a fresh process, against the same thing without pictures measured in the same run:
- catalog: CatalogSync applying a snapshot of N products, each with its own thumbnail as the
  hub sends it (a ~6 KiB 160x160 JPEG, base64 in the JSON), message by message as the broker
  delivers them, then the checkout's in-memory catalog loaded from it;
- screen: the kiosk (offscreen window, 800x480) on its browse screen showing a page of
  search results whose products all have pictures, after a few seconds of frames.
"""

from __future__ import annotations

import gc
import io
import json
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from msgspec.structs import replace

from appliance.mqtt.catalog_products import payload_from_product
from appliance.mqtt.payloads import ProductPayload, SnapshotChunk, encode
from bench import fixtures
from bench.fresh_process import json_from_module
from bench.proc_memory import resident_kib
from bench.result import Row, Target

NAME = "picture_memory"
DEVICE = "bench-0001"
STORE = "bench-store"
KIB_PER_MB = 1024
CHUNK = 25  # products per snapshot chunk: about 230 KB of JSON with pictures
PICTURE_EDGE = 160  # the hub's thumbnail box (hub/product_images.py)
# Pictures may cost the device no more than this share of resident memory.
RATIO = 1.05
CHILD_TIMEOUT_S = 600
SEARCH = "e"  # a search most demo products match: a full page of results
RESULT_MARK = "bench-result: "  # Kivy writes to stdout too


@dataclass(frozen=True, slots=True)
class Sizes:
    """Products in the synced catalog; seconds of frames before the screen is measured."""

    products: int
    settle_s: float


FULL = Sizes(products=5_000, settle_s=3.0)
QUICK = Sizes(products=200, settle_s=2.5)


# -- pictures and messages (the parent process) -------------------------------------------


def thumbnail(index: int) -> bytes:
    """A distinct JPEG of about 6 KiB, as the hub makes them (noise keeps JPEG from shrinking)."""
    from PIL import Image, ImageDraw

    noise = _noise(index % 8)
    tint = Image.new("RGB", noise.size, ((index * 37) % 256, (index * 91) % 256, index % 256))
    picture = Image.blend(noise, tint, 0.6)
    ImageDraw.Draw(picture).text((8, 8), str(index), fill=(255, 255, 255))  # one of a kind
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=65)
    return out.getvalue()


_NOISE: dict[int, Any] = {}


def _noise(seed: int) -> Any:
    from PIL import Image

    if seed not in _NOISE:
        _NOISE[seed] = Image.effect_noise((PICTURE_EDGE, PICTURE_EDGE), 40 + seed).convert("RGB")
    return _NOISE[seed]


def catalog_payloads(products: int, *, pictures: bool) -> Iterator[ProductPayload]:
    """The synthetic catalog as the hub sends it, each product with its own picture or none."""
    for i in range(products):
        payload = payload_from_product(fixtures.product(i), stock=fixtures.stock_of(i))
        yield replace(payload, thumbnail=thumbnail(i)) if pictures else payload


def write_messages(path: Path, products: int, *, pictures: bool) -> dict[str, int]:
    """The catalog's snapshot chunks, length-prefixed in a file; their count and bytes."""
    payloads = list(catalog_payloads(products, pictures=pictures))
    chunks = -(-len(payloads) // CHUNK)
    total = 0
    with path.open("wb") as out:
        for k in range(chunks):
            part = payloads[k * CHUNK : (k + 1) * CHUNK]
            body = encode(
                SnapshotChunk(store=STORE, version=1, chunk=k, chunks=chunks, products=part)
            )
            out.write(struct.pack(">I", len(body)) + body)
            total += len(body)
    return {"messages": chunks, "bytes": total}


def read_messages(path: Path) -> Iterator[bytes]:
    """The messages `write_messages` wrote, one at a time."""
    with path.open("rb") as source:
        while header := source.read(4):
            yield source.read(struct.unpack(">I", header)[0])


# -- the catalog, in a fresh process -------------------------------------------------------


def measure_catalog(folder: Path, messages: Path) -> dict[str, Any]:
    """VmRSS after CatalogSync applied the messages and the in-memory catalog was loaded."""
    from appliance.mqtt.catalog_sync import CatalogSync
    from appliance.store.catalog import SqliteCatalog
    from appliance.store.database import open_database
    from appliance.store.memory_catalog import MemoryCatalog
    from appliance.store.migrations import migrate

    db = open_database(folder / "appliance.db")
    migrate(db)
    sync = CatalogSync(db, DEVICE, lambda _topic, _data: None)
    sync.start()
    # Pillow is loaded either way, as in the kiosk (Kivy's image loader, the receipt's
    # printer driver): what it costs a process that never had it is measured apart.
    gc.collect()
    bare = resident_kib(os.getpid())["VmRSS"]
    from PIL import Image

    Image.preinit()  # the JPEG and PNG readers, as the first picture loads them
    gc.collect()
    before = resident_kib(os.getpid())["VmRSS"]
    started = perf_counter()
    for message in read_messages(messages):
        sync.submit(message)  # one at a time, as paho hands them over
        del message
        if not sync.wait_idle(CHILD_TIMEOUT_S):
            raise RuntimeError("the catalog sync did not finish a message")
    apply_s = perf_counter() - started
    if sync.version != 1:
        raise RuntimeError(f"the snapshot did not apply (version {sync.version})")
    applied = resident_kib(os.getpid())["VmRSS"]
    memory = MemoryCatalog(SqliteCatalog(db))
    products = memory.refresh()  # also hands what the loads freed back to the system
    gc.collect()
    memory_kib = resident_kib(os.getpid())
    folder_kib = sum(p.stat().st_size for p in (folder / "thumbnails").glob("*")) // 1024
    return {
        "products": products,
        "with_picture": sum(1 for p in SqliteCatalog(db).all_products() if p.thumbnail),
        "apply_s": apply_s,
        "pillow_kib": before - bare,
        "before_kib": before,
        "applied_kib": applied,
        "loaded_kib": memory_kib["VmRSS"],
        "memory_kib": memory_kib,
        "picture_files_kib": folder_kib,
    }


# -- the browse screen, in a fresh process -------------------------------------------------


def measure_screen(state: Path, pictures: bool, settle_s: float) -> dict[str, Any]:
    """VmRSS of the kiosk showing a page of search results, their pictures loaded or none."""
    from appliance.settings import ScreenSettings
    from bench import screen_app

    screen = ScreenSettings(width=800, height=480)
    screen_app.prepare_offscreen(screen)
    settings = screen_app.settings_for(
        state / "appliance.db", {"width": screen.width, "height": screen.height}
    )
    _demo_catalog(settings, pictures=pictures)
    frames = screen_app.Frames(paced=True)
    try:
        with screen_app.open_app(settings, frames) as (app, _services):
            frames.until(lambda: screen_app.all_screens_built(app), "READY=1")
            app.session.go("browse")
            frames.until(lambda: app.session.screen == "browse", "the browse screen")
            app.browse.search(SEARCH)
            frames.until(lambda: app.browse.results and not app.browse.searching, "results")
            shown = frames.until(lambda: _pictures_shown(app, pictures), "the page's pictures")
            settle_until = perf_counter() + settle_s  # the app trims its heap when quiet
            while perf_counter() < settle_until:
                frames.frame()
            gc.collect()
            memory = resident_kib(os.getpid())
            return {
                "results": len(app.browse.results),
                "rows_shown": shown[0],
                "pictures_shown": shown[1],
                "pictures_read": app.pictures.read,
                **memory,
            }
    finally:
        frames.close()


def _pictures_shown(app: Any, pictures: bool) -> tuple[int, int] | None:
    """(rows on show, of them with a picture drawn) once every row on show has its picture."""
    from appliance.screens.customer.browse import ProductRow
    from appliance.screens.pictures import Thumbnail

    rows = [w for w in app.root.walk(restrict=True) if isinstance(w, ProductRow) and w.parent]
    thumbs = [w for row in rows for w in row.walk(restrict=True) if isinstance(w, Thumbnail)]
    drawn = sum(1 for t in thumbs if t.texture is not None)
    if not rows or (pictures and drawn < len(rows)):
        return None
    return len(rows), drawn


def _demo_catalog(settings: Any, *, pictures: bool) -> None:
    """The demo store's catalog, sent again by the hub with a picture for every product (or
    with none), through CatalogSync as a delta."""
    from appliance.mqtt.catalog_sync import CatalogSync
    from appliance.mqtt.payloads import CatalogDelta
    from appliance.service.demo import seed_demo_catalog
    from appliance.store.catalog import SqliteCatalog
    from appliance.store.database import open_database
    from appliance.store.migrations import migrate

    db = open_database(settings.database.path)
    try:
        migrate(db)
        catalog = SqliteCatalog(db)
        seed_demo_catalog(catalog, settings.store)
        upserts = [payload_from_product(p) for p in catalog.all_products()]
        if pictures:
            upserts = [replace(p, thumbnail=thumbnail(i)) for i, p in enumerate(upserts)]
        sync = CatalogSync(db, settings.device.id, lambda _topic, _data: None)
        if sync.apply_delta(CatalogDelta(from_version=0, to_version=1, upserts=upserts)) != (
            "applied"
        ):
            raise RuntimeError("the demo catalog's pictures did not apply")
    finally:
        db.close()


# -- the rows ------------------------------------------------------------------------------


def _in_fresh_process(*arguments: str) -> dict[str, Any]:
    result: dict[str, Any] = json_from_module(
        "bench.picture_memory", list(arguments), timeout_s=CHILD_TIMEOUT_S, mark=RESULT_MARK
    )
    return result


def _mb(kib: float) -> float:
    return kib / KIB_PER_MB


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Resident memory with pictures against without, the catalog and the browse screen."""
    from bench.screen_app import short_state_dir

    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    measured: dict[str, dict[str, Any]] = {}
    sent: dict[str, dict[str, int]] = {}
    for way, pictures in (("with", True), ("without", False)):
        folder = workdir / f"catalog-{way}"
        folder.mkdir(exist_ok=True)
        messages = workdir / f"snapshot-{way}.bin"
        sent[way] = write_messages(messages, sizes.products, pictures=pictures)
        measured[way] = _in_fresh_process("catalog", str(folder), str(messages))
    screens: dict[str, dict[str, Any]] = {}
    for way, pictures in (("with", True), ("without", False)):
        with short_state_dir() as state:
            screens[way] = _in_fresh_process(
                "screen", str(state), "1" if pictures else "0", str(sizes.settle_s)
            )
    return _rows(sizes, measured, sent, screens)


def _rows(
    sizes: Sizes,
    catalog: dict[str, dict[str, Any]],
    sent: dict[str, dict[str, int]],
    screens: dict[str, dict[str, Any]],
) -> list[Row]:
    ours, theirs = catalog["with"]["loaded_kib"], catalog["without"]["loaded_kib"]
    screen, bare = screens["with"]["VmRSS"], screens["without"]["VmRSS"]
    details = {"catalog": catalog, "messages": sent, "screen": screens}
    return [
        Row(
            NAME,
            "catalog synced with pictures, VmRSS",
            _mb(ours),
            "MB",
            target=Target(RATIO, at_most=True, on_ratio=True),
            baseline=_mb(theirs),
            baseline_name="the same catalog without pictures",
            ratio=ours / theirs,
            note=(
                f"a fresh process: CatalogSync (its worker) applies a snapshot of "
                f"{sizes.products} products, each with its own ~6 KiB {PICTURE_EDGE}px JPEG "
                f"({sent['with']['messages']} chunks, {sent['with']['bytes'] // 1024} KiB of "
                f"JSON, fed one message at a time), then MemoryCatalog.refresh(); VmRSS at the "
                f"end. Baseline: the same products without pictures "
                f"({sent['without']['messages']} chunks), same steps. Pictures on disk: "
                f"{catalog['with']['picture_files_kib'] // 1024} MB. Pillow (which checks "
                "each picture) is loaded in both processes before they start, as it is in the "
                "kiosk; the next row is what loading it costs a process that never had it"
            ),
            details=details,
        ),
        Row(
            NAME,
            "Pillow, loaded at the first picture",
            _mb(catalog["with"]["pillow_kib"]),
            "MB",
            note=(
                "VmRSS growth of `from PIL import Image; Image.preinit()` in the same fresh "
                "process: paid once by a headless appliance with no printer driver loading "
                "Pillow already, independent of how many pictures there are (info)"
            ),
            details=details,
        ),
        Row(
            NAME,
            "catalog apply with pictures",
            catalog["with"]["apply_s"],
            "s",
            baseline=catalog["without"]["apply_s"],
            baseline_name="without pictures",
            ratio=catalog["with"]["apply_s"] / catalog["without"]["apply_s"],
            note="the same runs: every picture checked (decoded) and written with fsync (info)",
            details=details,
        ),
        Row(
            NAME,
            "browse page with pictures, VmRSS",
            _mb(screen),
            "MB",
            target=Target(RATIO, at_most=True, on_ratio=True),
            baseline=_mb(bare),
            baseline_name="the same page without pictures",
            ratio=screen / bare,
            note=(
                f"`the kiosk` offscreen (800x480, Mesa) in a fresh process, browse screen "
                f"searching {SEARCH!r} over the demo catalog: {screens['with']['results']} "
                f"results, {screens['with']['rows_shown']} rows on show, "
                f"{screens['with']['pictures_shown']} pictures drawn "
                f"({screens['with']['pictures_read']} files read); VmRSS after "
                f"{sizes.settle_s} s of frames. Baseline: the same catalog sent without "
                "pictures, the same page"
            ),
            details=details,
        ),
    ]


if __name__ == "__main__":
    from appliance.service.malloc import limit_malloc_arenas

    limit_malloc_arenas()  # as `appliance` does before any thread starts
    _kind, *_arguments = sys.argv[1:]
    if _kind == "catalog":
        _result = measure_catalog(Path(_arguments[0]), Path(_arguments[1]))
    else:
        _result = measure_screen(Path(_arguments[0]), _arguments[1] == "1", float(_arguments[2]))
    print(RESULT_MARK + json.dumps(_result), flush=True)
