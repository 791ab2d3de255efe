"""The Kivy app: the window, the screens, and the bus drained on every frame."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.graphics.opengl import glFlush
from kivy.lang import Builder
from kivy.properties import BooleanProperty
from kivy.uix.floatlayout import FloatLayout

from appliance.screens.customer.sim_requests import SimPayRequests
from appliance.screens.deck import ScreenDeck
from appliance.screens.i18n import tr
from appliance.screens.kivy_env import drawn_offscreen
from appliance.screens.presenter_set import build_presenters
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.session import KioskSession
from appliance.screens.presenters.store_writes import StoreWrites
from appliance.screens.registry import load_class
from appliance.screens.theme import Theme
from appliance.screens.warmup import HiddenDraw, warm_up
from appliance.service.lifecycle import Running
from appliance.service.main_loop import Checkpointer
from appliance.service.malloc import give_back_free_memory
from appliance.service.notify import SystemdNotifier

log = logging.getLogger(__name__)

WIDGETS_KV = Path(__file__).with_name("widgets.kv")
# The bus is drained every frame; housekeeping waits for this long without events.
IDLE_HOUSEKEEPING_SECONDS = 0.5
TRIM_AFTER_IDLE_SECONDS = 2.0


def settle_heap() -> None:
    """Move everything built so far out of the garbage collector's sight.

    The screens, kv rules and catalog are a quarter of a million objects that live as long
    as the process; a full collection walked them all, a frame of over 100 ms at random in
    the middle of a sale. Frozen, a collection walks only what the sale itself made.
    Then the C heap gives back what start-up freed.
    """
    gc.collect()
    gc.freeze()
    trimmed = give_back_free_memory()  # what start-up freed goes back to the system
    log.info("heap settled: %d objects frozen, trimmed: %s", gc.get_freeze_count(), trimmed)


def hand_frame_to_gl(*_args: Any) -> None:
    """Hand the frame's drawing to the GL driver now (on Window's on_flip, before the swap).

    An offscreen surface's swap does nothing, so nothing told software GL (Mesa llvmpipe)
    that a frame had ended: it kept every frame's draw commands in one growing scene, a
    megabyte a frame while anything animated, and drew them all at once much later.
    A display's swap flushes by itself.
    """
    glFlush()


class KioskApp(App):
    """The checkout screen over a running appliance."""

    portrait = BooleanProperty(False)  # taller than wide: stack instead of side by side
    compact = BooleanProperty(False)  # a short screen (the Pi 7"): tighter headers
    warming: HiddenDraw | None = None  # the screens drawn ahead, hidden, before READY=1

    def __init__(
        self,
        services: Running,
        *,
        notifier: SystemdNotifier | None = None,
        stop: threading.Event | None = None,
        checkpointer: Checkpointer | None = None,
        ready_status: Callable[[], str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        settings = services.app.settings
        self.title = f"{settings.store.name} checkout"
        self.services = services
        self.notifier = notifier
        self.stop_requested = stop or threading.Event()
        self.checkpointer = checkpointer
        self.ready_status = ready_status or (lambda: "ready")
        self.theme = Theme(
            high_contrast=settings.screen.high_contrast, large_text=settings.screen.large_text
        )
        self.tr = tr
        self.session = KioskSession(services, tr)
        self.ctx = ScreenContext(services, self.session, tr, StoreWrites(services.app.bus))
        self.presenters = build_presenters(self.ctx)
        # `.kv` rules reach presenters as `app.cart`, `app.till`...: the same typed objects.
        for name, presenter in self.presenters.by_name().items():
            setattr(self, name, presenter)
        if (simulation := services.app.simulation) is not None:
            # `appliance sim pay` is then the customer pressing Pay: the screen decides.
            presenters = self.presenters
            requests = SimPayRequests(self.ctx, presenters.cart, presenters.payment)
            simulation.serve_screen(requests)
            self.bind(on_stop=lambda *_args: simulation.serve_screen(None))
        self.deck: ScreenDeck | None = None
        self._last_event = self._last_activity = time.monotonic()
        self._heap_trimmed = True  # settle_heap trims once the screens are built
        self.ready = False
        self.settled = False  # the screens built ahead, the heap settled: start-up is over

    def build(self) -> Any:
        if str(WIDGETS_KV) not in Builder.files:
            Builder.load_file(str(WIDGETS_KV))
        root = FloatLayout()
        self.deck = ScreenDeck(self.services.app.settings.screen.mode)
        root.add_widget(self.deck)
        root.add_widget(load_class("appliance.screens.widgets:MessageBanner")())
        self.session.bind(screen=lambda _s, name: self._show(name))
        self.session.go_home()
        self._show(self.session.screen)
        Window.bind(size=self._window_resized)
        self._window_resized(Window, Window.size)
        self.theme.bind(background=self._paint_background)
        self._paint_background(self.theme, self.theme.background)
        return root

    def on_start(self) -> None:
        Clock.schedule_interval(self._pump, 0)
        Window.bind(on_flip=self._first_flip)
        if drawn_offscreen():
            Window.bind(on_flip=hand_frame_to_gl)

    def on_stop(self) -> None:
        self.ctx.writes.close()  # a sale being stored is stored before the store closes
        Window.unbind(on_flip=hand_frame_to_gl)
        gc.unfreeze()  # what this app built may be collected again once it is gone
        Window.unbind(size=self._window_resized)
        self.tr.forget_views()

    def _show(self, name: str) -> None:
        if self.deck is not None and name:
            self.deck.show(name)

    def _window_resized(self, _window: Any, size: tuple[int, int]) -> None:
        width, height = size
        self.portrait = height > width
        self.compact = min(width, height) < 600

    def _paint_background(self, _theme: Any, colour: Any) -> None:
        # The frame's clear paints the background: a full-window rectangle behind every
        # screen would cost as much fill again (software GL, the Pi's GPU) on every frame.
        Window.clearcolor = colour

    def _first_flip(self, *_args: Any) -> None:
        Window.unbind(on_flip=self._first_flip)
        self.ready = True  # the first frame is up: input is live
        log.info("checkout screen up (%dx%d)", *Window.size)
        if self.deck is not None:
            Clock.schedule_once(lambda _dt: self._build_rest(), 0)
        else:
            self._settle()

    def _build_rest(self) -> None:
        if self.deck is not None:
            self.deck.build_rest_when_idle(then=self._warm_up)

    def _warm_up(self) -> None:
        # The first sale must not be the first draw of its screens: see warmup.py.
        if self.deck is not None:
            self.warming = warm_up(self.deck, then=self._settle)

    def _settle(self) -> None:
        settle_heap()  # after the warm-up: what it made and dropped is collected first
        self.settled = True
        # Only now: a sale from here on draws no screen, list row or clip for the first time.
        if self.notifier is not None:
            self.notifier.ready(self.ready_status() + ", screen up")
        log.info("checkout screen ready (%dx%d)", *Window.size)

    def _pump(self, _dt: float) -> None:
        """Deliver what the threads posted; feed the watchdog; housekeeping when idle."""
        now = time.monotonic()
        if self.services.app.bus.drain():
            self._last_event = self._last_activity = now
            self._heap_trimmed = False
        elif self.checkpointer is not None and now - self._last_event > IDLE_HOUSEKEEPING_SECONDS:
            self.checkpointer.idle()
            self._last_event = now
        if not self._heap_trimmed and now - self._last_activity > TRIM_AFTER_IDLE_SECONDS:
            # A sale's texts, rows and GL buffers are malloc'd and freed in bursts; once the
            # kiosk is quiet, the heap gives the free pages back.
            give_back_free_memory()
            self._heap_trimmed = True
        if self.notifier is not None and self.settled:  # pings follow READY=1
            # Fed from the frame clock: a frozen screen stops the pings and systemd restarts us.
            self.notifier.watchdog()  # rate-limits itself
        if self.stop_requested.is_set():
            self.stop()
