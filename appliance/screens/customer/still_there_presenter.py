"""The customer walked away: ask "Are you still there?", then clear the cart and start over."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from kivy.clock import Clock, ClockEvent
from kivy.core.window import Window
from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, NumericProperty

from appliance.core.devices import BarcodeScanned, CardTapped
from appliance.screens.customer import CUSTOMER_SCREENS
from appliance.screens.customer.still_there import StillThereDialog
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.lifecycle import when_app_stops

log = logging.getLogger(__name__)

# Screens a customer may leave a sale on; welcome, locked and thanks hold no sale.
WATCHED_SCREENS = frozenset(CUSTOMER_SCREENS) - {"welcome", "locked", "thanks"}
TICK_SECONDS = 0.25


class IdlePresenter(EventDispatcher):
    """Watches touches and scans on the kiosk's sale screens; main thread, Kivy clock only."""

    asking = BooleanProperty(False)  # the "Are you still there?" dialog is open
    seconds_left = NumericProperty(0)  # until the cart is cleared

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._last_activity = time.monotonic()
        self._deadline = 0.0
        self._dialog: StillThereDialog | None = None
        ctx.bus.subscribe(BarcodeScanned, lambda _event: self.activity())
        ctx.bus.subscribe(CardTapped, lambda _event: self.activity())
        ctx.session.bind(screen=lambda *_args: self.activity())
        Window.bind(on_touch_down=self._touched)
        self._ticker: ClockEvent | None = Clock.schedule_interval(self._tick, TICK_SECONDS)
        when_app_stops(self._stop)

    def activity(self) -> None:
        """The customer did something: the idle time starts again (the dialog closes)."""
        self._last_activity = time.monotonic()
        if self.asking:
            self._close()

    def still_here(self) -> None:
        """The customer answered the dialog."""
        log.info("customer is still there")
        self.activity()

    def _touched(self, _window: Any, _touch: Any) -> None:
        # While the dialog is up, only its button answers it: a stray touch is no answer.
        if not self.asking:
            self._last_activity = time.monotonic()

    def _watching(self) -> bool:
        session = self._ctx.session
        return session.mode == "kiosk" and session.screen in WATCHED_SCREENS and not session.busy

    def _tick(self, _dt: float) -> None:
        now = time.monotonic()
        if not self._watching():
            self._last_activity = now
            if self.asking:
                self._close()
            return
        screen = self._ctx.settings.screen
        if self.asking:
            self.seconds_left = max(0, math.ceil(self._deadline - now))
            if now >= self._deadline:
                self._give_up()
        elif now - self._last_activity >= screen.idle_seconds:
            self._ask(now + screen.still_there_seconds)

    def _ask(self, deadline: float) -> None:
        log.info("no activity on %s: asking whether the customer is still there", self._screen)
        self._deadline = deadline
        self.seconds_left = math.ceil(deadline - time.monotonic())
        self.asking = True
        if self._dialog is None:
            # One dialog for the app's life: its texts stay bound to the translator.
            self._dialog = StillThereDialog()
        self._dialog.open()

    def _give_up(self) -> None:
        log.info("customer gone from %s: the sale is abandoned", self._screen)
        self._close()
        self._ctx.session.reset()
        self._last_activity = time.monotonic()

    def _close(self) -> None:
        self.asking = False
        if self._dialog is not None and self._dialog.parent is not None:
            self._dialog.dismiss(animation=False)

    @property
    def _screen(self) -> str:
        return str(self._ctx.session.screen)

    def _stop(self) -> None:
        Window.unbind(on_touch_down=self._touched)
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._close()
