"""Scan to cart line on screen: bytes into the scanner's pty until the frame that shows the row."""

from __future__ import annotations

import contextlib
import gc
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from appliance.drivers.sim.scanner import SimScanner
from bench import fixtures, screen_app
from bench.result import Row, Target
from bench.scan_latency import TERMINATOR, _raw_reader
from bench.screen_child import run_in_child
from bench.stats import percentile, summary_us

NAME = "screen_scan"
SEED = 20_251_122
NS_PER_MS = 1e6
# The cart is emptied after this many lines, so every new row lands in view at 800x480
# (scrolling a long cart to its newest line is the basket screen's business, not timed here).
CART_LINES = 5
NOTE = (
    "Kiosk app in a child process with its window made at 800x480 offscreen (Mesa llvmpipe, "
    "software GL), shop screen, {products} products in the catalog (MemoryCatalog). t0 = "
    "perf_counter_ns just before SimScanner.scan writes a distinct code into the pty the "
    "app's SerialScanner reads; frames are pumped with EventLoop.idle() until the CartRow "
    "naming the product is among the list's views inside its viewport; t1 = the end of the "
    "frame that drew it, after glFinish (the pixels are in the framebuffer). Unpaced: frames "
    "back to back (0.2 ms apart), so this is the work, not the wait for a 60 Hz slot. Cart "
    "emptied every {lines} lines (untimed). Raw = a pyserial read loop on its own pty, as "
    "scan_latency. Scan sounds at the default volume (SDL's dummy audio device)"
)
SOUNDS_NOTE = (
    "; sounds on vs off: a third run of unpaced scans alternating the scan sounds on (the "
    "default 0.5, the beep started through SDL_mixer on the dummy audio device) and off "
    "(volume 0, nothing played), so both halves share the app, the catalog and the "
    "machine's load; ratio = on / off, 1.0 means the sound adds nothing to the frame"
)
SOUND_VOLUME = 0.5
CHILD_TIMEOUT_S = 900.0


@dataclass(frozen=True, slots=True)
class Sizes:
    """Catalog size, timed scans for each pacing, and untimed scans before them."""

    products: int
    scans: int
    warmup: int


FULL = Sizes(products=100_000, scans=300, warmup=20)
QUICK = Sizes(products=500, scans=10, warmup=3)


def _codes(products: int, count: int) -> list[int]:
    """Distinct product numbers (not age-restricted: that would open the staff check)."""
    rng = random.Random(SEED)
    picked = [i for i in rng.sample(range(products), min(products, count * 2)) if i % 50 != 49]
    if len(picked) < count:
        raise RuntimeError(f"catalog of {products} too small for {count} distinct scans")
    return picked[:count]


def _cart_list(app: Any) -> Any:
    """The RecycleView of the shop screen's cart."""
    from kivy.uix.scrollview import ScrollView

    assert app.deck is not None
    screen = app.deck.get_screen("shop")
    # Kivy's Factory loads RecycleView as kivy.uix.recycleview.__init__, a second module
    # object: isinstance against kivy.uix.recycleview.RecycleView fails, so test by shape.
    found = [
        w
        for w in screen.walk(restrict=True)
        if isinstance(w, ScrollView) and hasattr(w, "layout_manager")
    ]
    if not found:
        raise RuntimeError("the shop screen has no cart list (RecycleView)")
    return found[0]


def _row_shown(cart_list: Any, name: str) -> bool:
    """A row naming `name` is laid out inside the list's visible area."""
    manager = cart_list.layout_manager
    if manager is None:
        return False
    left, bottom = cart_list.to_window(cart_list.x, cart_list.y)
    right, top = cart_list.to_window(cart_list.right, cart_list.top)
    for view in manager.children:
        if getattr(view, "name", None) != name:
            continue
        v_left, v_bottom = view.to_window(view.x, view.y)
        v_right, v_top = view.to_window(view.right, view.top)
        if v_left < right and v_right > left and v_bottom < top and v_top > bottom:
            return True
    return False


class Scanning:
    """Scans into the running app and times each until its row is drawn."""

    def __init__(self, app: Any, services: Any, frames: screen_app.Frames) -> None:
        self.app = app
        self.frames = frames
        self.scanner = screen_app.lab_of(services).scanner
        self.checkout = services.app.checkout
        self.cart_list = _cart_list(app)
        self.rng = random.Random(SEED)

    def one(self, number: int) -> tuple[int, int]:
        """Nanoseconds from the bytes to the flip of the frame showing the product's row, and
        the main thread's CPU time in between (what the machine's other load cannot inflate).
        """
        if len(self.checkout.cart.lines) >= CART_LINES:
            self.checkout.cancel()
            self.frames.until(lambda: not self.app.cart.rows, "the emptied cart")
        name = fixtures.product(number).name
        frames = self.frames
        if frames.paced:
            time.sleep(self.rng.uniform(0, screen_app.FRAME_S))  # any moment of a frame
        t0, cpu0 = perf_counter_ns(), time.thread_time_ns()
        self.scanner.scan(fixtures.ean13(number))
        deadline = t0 + int(screen_app.WAIT_S * 1e9)
        while perf_counter_ns() < deadline:
            flips = frames.flips
            frames.frame()
            if _row_shown(self.cart_list, name):
                while frames.flips == flips:  # laid out, not drawn yet: the next frame draws it
                    frames.frame()
                return frames.last_done_ns - t0, time.thread_time_ns() - cpu0
        raise RuntimeError(f"the row of {name} never showed")


def _time(scanning: Scanning, numbers: list[int], warmup: int) -> tuple[list[int], list[int]]:
    """Wall and main-thread CPU nanoseconds of each timed scan."""
    for number in numbers[:warmup]:
        scanning.one(number)
    gc.collect()
    timed = [scanning.one(number) for number in numbers[warmup:]]
    return [wall for wall, _ in timed], [cpu for _, cpu in timed]


def _time_sounds(
    scanning: Scanning, numbers: list[int], warmup: int
) -> tuple[list[int], list[int], dict[str, int]]:
    """Scans alternating sounds on and off: wall nanoseconds of each half, and the plays."""
    sounds = scanning.app.presenters.scan_sounds
    if not sounds.tones.loaded:
        raise RuntimeError("the scan sounds did not load: no audio device to compare with")
    on: list[int] = []
    off: list[int] = []
    for index, number in enumerate(numbers):
        sounding = index % 2 == 0
        sounds.tones.set_volume(SOUND_VOLUME if sounding else 0.0)
        wall, _cpu = scanning.one(number)
        if index >= 2 * warmup:
            (on if sounding else off).append(wall)
    sounds.tones.set_volume(SOUND_VOLUME)
    return on, off, dict(sounds.played)


def _raw(count: int, warmup: int) -> list[int]:
    """The floor: a bare pyserial read loop on a pty of its own, scan_latency's way."""
    samples: list[int] = []
    with SimScanner(terminator=TERMINATOR) as sim, _raw_reader(sim.port) as frames:
        for index in range(count + warmup):
            code = fixtures.ean13(index)
            t0 = perf_counter_ns()
            sim.scan(code)
            t1, frame = frames.get(timeout=screen_app.WAIT_S)
            if frame != code.encode("ascii"):
                raise RuntimeError(f"sent {code}, read {frame!r}")
            if index >= warmup:
                samples.append(t1 - t0)
    return samples


def measure_here(width: int, height: int, **sizes: int) -> dict[str, Any]:
    """In bench.screen_child, its window made at width x height: `measure`."""
    return measure(Sizes(**sizes), (width, height))


@dataclass(frozen=True, slots=True)
class Shop:
    """The running app on its shop screen, ready to time scans."""

    scanning: Scanning
    fill_s: float  # seconds to fill the catalog
    loaded: int  # products in the app's lookup


@contextlib.contextmanager
def shop(products: int, size: tuple[int, int]) -> Iterator[Shop]:
    """The kiosk app with `products` in its catalog, window `size`, on the shop screen, unpaced."""
    frames = screen_app.Frames(paced=False)
    width, height = size
    with screen_app.short_state_dir() as state:
        db = state / "appliance.db"
        fill_s = screen_app.fill_catalog(db, products)
        screen = {"idle_seconds": 3600, "width": width, "height": height}
        settings = screen_app.settings_for(db, screen)
        try:
            with screen_app.open_app(settings, frames) as (app, services):
                frames.until(lambda: screen_app.all_screens_built(app), "every screen built")
                app.session.go("shop")
                frames.until(lambda: app.deck is not None and app.deck.current == "shop", "shop")
                yield Shop(Scanning(app, services, frames), fill_s, len(services.app.lookup))
        finally:
            frames.close()


def measure(sizes: Sizes, size: tuple[int, int]) -> dict[str, Any]:
    """Unpaced and 60 Hz-paced latencies in ns, and how the catalog was made."""
    per_run = sizes.scans + sizes.warmup
    numbers = _codes(sizes.products, 4 * per_run)
    with shop(sizes.products, size) as ready:
        scanning, frames = ready.scanning, ready.scanning.frames
        unpaced, unpaced_cpu = _time(scanning, numbers[:per_run], sizes.warmup)
        frames.paced = True
        paced, _ = _time(scanning, numbers[per_run : 2 * per_run], sizes.warmup)
        frames.paced = False
        sounds_on, sounds_off, played = _time_sounds(scanning, numbers[2 * per_run :], sizes.warmup)
        fill_s, loaded = ready.fill_s, ready.loaded
    return {
        "unpaced": unpaced,
        "unpaced_cpu": unpaced_cpu,
        "paced": paced,
        "sounds_on": sounds_on,
        "sounds_off": sounds_off,
        "played": played,
        "fill_s": fill_s,
        "loaded": loaded,
    }


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Time scan-to-screen through the real app, against a bare pyserial read."""
    sizes = QUICK if quick else FULL
    measured = run_in_child(NAME, screen_app.PI_DISPLAY, asdict(sizes), CHILD_TIMEOUT_S)
    raw = _raw(sizes.scans, sizes.warmup)
    unpaced, paced = measured["unpaced"], measured["paced"]
    note = NOTE.format(products=sizes.products, lines=CART_LINES)
    details = {
        "products": sizes.products,
        "catalog_in_memory": measured["loaded"],
        "catalog_fill_s": round(measured["fill_s"], 3),
        "unpaced": summary_us(unpaced),
        "unpaced_main_thread_cpu": summary_us(measured["unpaced_cpu"]),
        "paced_60hz": summary_us(paced),
        "raw_pyserial": summary_us(raw),
        "sounds_on": summary_us(measured["sounds_on"]),
        "sounds_off": summary_us(measured["sounds_off"]),
        "sounds_played": measured["played"],
        "cart_lines": CART_LINES,
        "warmup": sizes.warmup,
    }
    rows = []
    for metric, samples, q, target, extra in (
        ("p99 scan to frame", unpaced, 99, Target(16.0, at_most=True), ""),
        ("p50 scan to frame", unpaced, 50, None, ""),
        (
            "p99 at 60 Hz pacing",
            paced,
            99,
            None,
            "; info: frames on 1/60 s slots as Kivy paces them, the scan at a random moment "
            "of a frame, so up to one frame of waiting is included",
        ),
    ):
        mine = percentile(samples, q) / NS_PER_MS
        theirs = percentile(raw, q) / NS_PER_MS
        rows.append(
            Row(
                NAME,
                metric,
                mine,
                "ms",
                target=target,
                baseline=theirs,
                baseline_name=f"raw pyserial read loop p{q}",
                ratio=mine / theirs,
                note=note + extra,
                details=details,
            )
        )
    sounds_on, sounds_off = measured["sounds_on"], measured["sounds_off"]
    for q in (50, 99):
        mine = percentile(sounds_on, q) / NS_PER_MS
        theirs = percentile(sounds_off, q) / NS_PER_MS
        rows.append(
            Row(
                NAME,
                f"p{q} scan to frame, sounds on",
                mine,
                "ms",
                baseline=theirs,
                baseline_name=f"the same scans with sounds off, interleaved, p{q}",
                ratio=mine / theirs,
                note=note + SOUNDS_NOTE,
                details=details,
            )
        )
    rows.append(
        Row(
            NAME,
            "p99 main-thread CPU",
            percentile(measured["unpaced_cpu"], 99) / NS_PER_MS,
            "ms",
            note=(
                "the unpaced scans again, counting only the main thread's CPU time from the "
                "bytes to the flip (thread_time): what other load on the machine cannot "
                "inflate (info)"
            ),
            details=details,
        )
    )
    return rows
