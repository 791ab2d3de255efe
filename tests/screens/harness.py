"""Drives the real KioskApp offscreen: frames, touches, scanner bytes, screenshots.

One Kivy window lives per test process; each test gets a fresh appliance and app on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.base import EventLoop
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang.parser import global_idmap
from kivy.tests.common import UnitTestTouch
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

from appliance.drivers.sim.lab import SimLab
from appliance.screens.app import KioskApp
from appliance.service.lifecycle import Running, running
from appliance.settings import Settings, parse_settings

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SCROLL_TAP_SECONDS = 0.25
LAYOUTS = {"pi7": (800, 480), "tablet": (1280, 800), "portrait": (800, 1280)}


def in_scrolling_view(widget: Widget) -> bool:
    """`widget` sits in a ScrollView that scrolls, so a tap on it is held back a moment."""
    parent = widget.parent
    while isinstance(parent, Widget):  # up to the window, which is not a widget
        if isinstance(parent, ScrollView) and (parent.do_scroll_x or parent.do_scroll_y):
            return True
        parent = parent.parent
    return False


@dataclass
class Kiosk:
    """The running app and its appliance; every wait pumps Kivy frames on this thread."""

    app: KioskApp
    services: Running
    frame_seconds: list[float] = field(default_factory=list)

    @property
    def lab(self) -> SimLab:
        """The simulators behind the devices."""
        assert self.services.app.lab is not None
        return self.services.app.lab

    @property
    def screen(self) -> str:
        """The name of the screen on show."""
        return self.app.session.screen

    def pump(self, frames: int = 1) -> None:
        """Run `frames` frames of the real event loop, timing each."""
        for _ in range(frames):
            start = time.perf_counter()
            EventLoop.idle()
            self.frame_seconds.append(time.perf_counter() - start)

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
    ) -> Any:
        """Pump frames until `predicate()` is truthy; fail with `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} (screen {self.screen!r})")
            time.sleep(0.005)

    def wait_for_screen(self, name: str, timeout: float = 15.0) -> None:
        """Pump until `name` is on show and drawn."""
        self.wait_for(lambda: self.screen == name, timeout, f"screen {name!r}")
        self.pump(2)

    def widgets(self, root: Widget | None = None) -> Iterator[Widget]:
        """Every widget on the current screen and overlays, depth first."""
        for top in [root] if root is not None else list(Window.children):
            yield from top.walk(restrict=True)

    def visible(self, widget: Widget) -> bool:
        """On screen, not hidden by opacity or a parent screen that is not current."""
        node: Any = widget
        while node is not None and node is not Window:
            if getattr(node, "opacity", 1) == 0 or getattr(node, "disabled", False):
                return False
            node = node.parent
        x, y = widget.to_window(*widget.center)
        return 0 <= x <= Window.width and 0 <= y <= Window.height

    def find_text(self, text: str) -> Widget:
        """The visible widget whose text is exactly `text` (in the current language)."""
        found = [w for w in self.widgets() if getattr(w, "text", None) == text and self.visible(w)]
        if not found:
            shown = sorted({w.text for w in self.widgets() if getattr(w, "text", "")})
            raise AssertionError(f"no visible {text!r} on {self.screen!r}; texts: {shown}")
        return found[0]

    def tap(self, widget: Widget) -> None:
        """A finger down and up on the middle of `widget`, once its layout has settled."""
        # A dialog just opened may still be placing its scrolled content: aim after that.
        self.pump(2)
        x, y = widget.to_window(*widget.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        self.pump()
        touch.touch_up()
        self.pump(2)
        if in_scrolling_view(widget):
            # Kivy's ScrollView tells a tap from a scroll and hands the tap on 0.2 s later.
            released = time.monotonic() + SCROLL_TAP_SECONDS
            while time.monotonic() < released:
                self.pump()

    def tap_text(self, text: str) -> None:
        """Tap the visible button showing `text`."""
        self.tap(self.find_text(text))

    def scan(self, code: str) -> None:
        """The simulated scanner reads `code`: bytes into the pty, through pyserial."""
        scanner = self.lab.scanner
        assert scanner is not None
        scanner.scan(code)

    def resize(self, layout: str) -> None:
        """Switch the window to one of LAYOUTS."""
        Window.size = LAYOUTS[layout]
        self.pump(3)

    def screenshot(self, name: str) -> Path:
        """Save the window as tests/artifacts/<name>.png (real pixels)."""
        ARTIFACTS.mkdir(exist_ok=True)
        self.pump(2)
        base = ARTIFACTS / name
        saved = Path(Window.screenshot(str(base) + ".png"))
        final = base.with_suffix(".png")
        saved.replace(final)  # Kivy appends a counter to the name: drop it
        return final


def kiosk_settings(data_dir: Path, screen: dict[str, Any] | None = None) -> Settings:
    """A simulated appliance's settings with the given [screen] table."""
    return parse_settings(
        {
            "device": {"id": "sim-0001", "receipt_prefix": "SIM"},
            "database": {"path": str(data_dir / "appliance.db")},
            "store": {"name": "Demo Store", "currency": "EUR", "locale": "de_DE"},
            "screen": screen or {},
        },
        source="test",
    )


@contextmanager
def open_kiosk(
    tmp_path: Path,
    *,
    screen: dict[str, Any] | None = None,
    settings: Settings | None = None,
    config_path: Path | None = None,
) -> Iterator[Kiosk]:
    """Start a simulated appliance and the kiosk app on the shared offscreen window.

    `config_path` is the file `settings` came from: with a [hub] fleet key, fleet commands
    are accepted (as `appliance run --config` does).
    """
    settings = settings or kiosk_settings(tmp_path / "state", screen)
    with running(settings, simulate=True, screen=True, config_path=config_path) as services:
        Window.size = (settings.screen.width, settings.screen.height)
        app = KioskApp(services)
        app._run_prepare()  # build, add to the window, on_start; frames are ours to pump
        harness = Kiosk(app, services)
        try:
            harness.wait_for(lambda: app.ready, what="first frame")
            yield harness
        finally:
            Clock.unschedule(app._pump)
            app.dispatch("on_stop")
            for child in list(Window.children):
                Window.remove_widget(child)
            for _ in range(3):  # let the removed widgets' pending callbacks run while app exists
                EventLoop.idle()
            App._running_app = None
            # kv's `app` caches the running app and forgets it on on_stop; a kv rule applied
            # in the frames above (a screen still being built) cached this app again.
            object.__setattr__(global_idmap["app"], "_obj", None)
