"""The checkout screen inside the bench process, offscreen: catalogs, the app, timed frames.

Kivy reads its environment once, at its first import: `prepare_offscreen()` must run before
anything imports kivy, so the Kivy imports below live inside the functions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter, perf_counter_ns
from typing import TYPE_CHECKING, Any

from appliance.settings import ScreenSettings, Settings, parse_settings
from appliance.store.catalog import SqliteCatalog
from bench import fixtures
from bench.databases import open_ours

if TYPE_CHECKING:
    from appliance.screens.app import KioskApp
    from appliance.service.lifecycle import Running

KIVY_HOME = Path(tempfile.gettempdir()) / f"appliance-bench-kivy-{os.getuid()}"
# The offscreen surface keeps the size the window is created with: big enough for all layouts.
SURFACE = ScreenSettings(width=1280, height=1280)
PI_DISPLAY = (800, 480)
TABLET = (1280, 800)
FRAME_S = 1 / 60  # Kivy's default maxfps
WAIT_S = 15.0
STORE = {"name": "Bench Store", "currency": fixtures.CURRENCY, "locale": "de_DE"}
DEVICE = {"id": "bench-0001", "receipt_prefix": "BEN"}


def prepare_offscreen(surface: ScreenSettings = SURFACE) -> None:
    """Real OpenGL (Mesa) without a display, before the first `import kivy`; safe to repeat.

    The window is created at `surface` and keeps that size: a measurement draws at the size
    it measures (bench.screen_child), since every pixel costs on a software-rendered screen.
    """
    from appliance.screens.kivy_env import prepare_kivy

    os.environ.setdefault("KIVY_HOME", str(KIVY_HOME))
    prepare_kivy(KIVY_HOME, surface, offscreen=True)


@contextmanager
def short_state_dir() -> Iterator[Path]:
    """A state folder with a short path, removed afterwards.

    The simulator control socket lives beside the database, and a Unix socket path is at
    most 107 bytes: a results folder deep inside a test's temporary tree is too long.
    """
    folder = Path(tempfile.mkdtemp(prefix="bench-screen-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fill_catalog(db_path: Path, products: int) -> float:
    """A migrated database holding `products` synthetic products; seconds it took."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    started = perf_counter()
    db = open_ours(db_path)
    try:
        rows = ((fixtures.product(i), fixtures.stock_of(i)) for i in range(products))
        SqliteCatalog(db).upsert(rows)
    finally:
        db.close()
    return perf_counter() - started


def settings_for(db_path: Path, screen: dict[str, Any] | None = None) -> Settings:
    """A simulated store on `db_path`; an empty catalog there gets the demo products."""
    return parse_settings(
        {
            "device": DEVICE,
            "database": {"path": str(db_path)},
            "store": STORE,
            "screen": screen or {},
        },
        source="bench",
    )


def config_toml(db_path: Path, screen: ScreenSettings) -> str:
    """The same store as a configuration file, for `appliance run --config`."""
    return "\n".join(
        [
            "[device]",
            f'id = "{DEVICE["id"]}"',
            f'receipt_prefix = "{DEVICE["receipt_prefix"]}"',
            "[database]",
            f'path = "{db_path}"',
            "[store]",
            *(f'{key} = "{value}"' for key, value in STORE.items()),
            "[screen]",
            f"width = {screen.width}",
            f"height = {screen.height}",
            "",
        ]
    )


@dataclass
class Frames:
    """Runs the real event loop one frame at a time and times the work of each frame.

    Kivy's own pacing is switched off so a frame's time is its work, not its sleep. Paced,
    each frame starts on the next 1/60 s slot, as Kivy's loop does; unpaced, frames follow
    each other with `gap_s` between them, so the threads feeding the bus get the GIL.
    Each frame ends with glFinish: a flip only queues the drawing, and with software GL
    (and on a GPU) the pixels are there when it has finished, which is what is timed.
    """

    paced: bool = True
    gap_s: float = 0.0002
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # the main thread's own CPU time
    step: str = ""  # what the frames are for, so the worst one can be named
    steps: list[str] = field(default_factory=list)
    flips: int = 0
    last_done_ns: int = 0  # the end of the last frame, its drawing finished
    _next_slot: float = 0.0

    def __post_init__(self) -> None:
        from kivy.clock import Clock
        from kivy.core.window import Window

        Clock._max_fps = 0  # Kivy has no public switch for its pacing
        Window.bind(on_flip=self._flipped)

    def close(self) -> None:
        """Stop counting flips; Kivy paces its frames again."""
        from kivy.clock import Clock
        from kivy.config import Config
        from kivy.core.window import Window

        Window.unbind(on_flip=self._flipped)
        Clock._max_fps = float(Config.getint("graphics", "maxfps"))

    def _flipped(self, *_args: Any) -> None:
        self.flips += 1

    def frame(self) -> float:
        """One frame; its work in seconds."""
        from kivy.base import EventLoop
        from kivy.graphics.opengl import glFinish

        if self.paced:
            wait = self._next_slot - perf_counter()
            if wait > 0:
                time.sleep(wait)
        else:
            time.sleep(self.gap_s)
        started, cpu = perf_counter(), time.thread_time()
        EventLoop.idle()
        glFinish()
        self.last_done_ns = perf_counter_ns()
        took = perf_counter() - started
        self._next_slot = started + FRAME_S
        self.seconds.append(took)
        self.cpu_seconds.append(time.thread_time() - cpu)
        self.steps.append(self.step)
        return took

    def forget(self) -> None:
        """Drop the timings so far (warm-up)."""
        self.seconds.clear()
        self.cpu_seconds.clear()
        self.steps.clear()

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        """Run frames until `predicate()` is truthy."""
        deadline = perf_counter() + timeout
        while True:
            self.frame()
            result = predicate()
            if result:
                return result
            if perf_counter() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")


@contextmanager
def open_app(settings: Settings, frames: Frames) -> Iterator[tuple[KioskApp, Running]]:
    """The simulated appliance and the kiosk app on the offscreen window, up to its first frame."""
    from kivy.app import App
    from kivy.base import EventLoop
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.lang.parser import global_idmap

    from appliance.screens.app import KioskApp
    from appliance.service.lifecycle import running

    with running(settings, simulate=True, screen=True) as services:
        Window.size = (settings.screen.width, settings.screen.height)
        app = KioskApp(services)
        app._run_prepare()  # build and start, without entering its loop
        try:
            frames.until(lambda: app.ready, "the first frame")
            yield app, services
        finally:
            Clock.unschedule(app._pump)
            app.dispatch("on_stop")
            for child in list(Window.children):
                Window.remove_widget(child)
            for _ in range(3):  # pending callbacks of the removed widgets run while app exists
                EventLoop.idle()
            App._running_app = None
            # kv's `app` caches the running app; a rule applied while closing cached it again.
            object.__setattr__(global_idmap["app"], "_obj", None)


def all_screens_built(app: KioskApp) -> bool:
    """Start-up is over, where the app says READY=1: the screens it builds ahead are built
    and drawn once, hidden, and its heap is settled."""
    return app.settled


def lab_of(services: Running) -> Any:
    """The simulators behind the devices."""
    lab = services.app.lab
    if lab is None:
        raise RuntimeError("the simulated appliance has no simulator lab")
    return lab
