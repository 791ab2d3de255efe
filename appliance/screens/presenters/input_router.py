"""Scans and card taps go where the screen on show wants them."""

from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.core.devices import BarcodeScanned, CardTapped, ScannerInputRejected
from appliance.screens.presenters.context import ScreenContext

log = logging.getLogger(__name__)

ScanHandler = Callable[[str], None]
TapHandler = Callable[[CardTapped], None]

# Screens where a scan adds to the cart; from welcome it also starts the sale.
SELLING_SCREENS = frozenset({"welcome", "shop", "browse", "till"})
# Screens after a stored sale: a scan there is the next customer, so that sale's screens end.
AFTER_SALE_SCREENS = frozenset({"receipt", "thanks"})


class InputRouter:
    """Routes BarcodeScanned and CardTapped by `session.screen`; main thread."""

    def __init__(self, ctx: ScreenContext, add_to_cart: Callable[[str], bool]) -> None:
        self._ctx = ctx
        self._add_to_cart = add_to_cart
        self._scans: dict[str, ScanHandler] = {}
        self._taps: dict[str, TapHandler] = {}
        self._captures: list[TapHandler] = []  # a dialog over the screen takes taps first
        ctx.bus.subscribe(BarcodeScanned, self._scanned)
        ctx.bus.subscribe(ScannerInputRejected, self._unreadable)
        ctx.bus.subscribe(CardTapped, self._tapped)

    def on_scan(self, screen: str, handler: ScanHandler) -> None:
        """While `screen` is up, scans go to `handler` instead of the cart."""
        self._scans[screen] = handler

    def on_tap(self, screen: str, handler: TapHandler) -> None:
        """While `screen` is up, card taps go to `handler`."""
        self._taps[screen] = handler

    def capture_taps(self, handler: TapHandler) -> None:
        """A dialog (staff approval) takes every tap until `release_taps(handler)`."""
        self._captures.append(handler)

    def release_taps(self, handler: TapHandler) -> None:
        """The dialog closed; taps go by screen again."""
        if handler in self._captures:
            self._captures.remove(handler)

    def _scanned(self, event: BarcodeScanned) -> None:
        session = self._ctx.session
        if session.screen in AFTER_SALE_SCREENS and not session.busy:
            # The last customer left without choosing a receipt (it stays stored, and can be
            # reprinted); the one scanning now starts their own sale.
            log.info("scan %s on %s: the next sale starts", event.code, session.screen)
            session.go_home()
        screen = session.screen
        if handler := self._scans.get(screen):
            handler(event.code)
        elif screen in SELLING_SCREENS and not session.locked:
            if self._add_to_cart(event.code) and screen == "welcome":
                session.go("shop")
        else:
            log.info("scan %s ignored on screen %s", event.code, screen)

    def _unreadable(self, event: ScannerInputRejected) -> None:
        """The scanner sent something that is no code: the customer sees it, besides the tone."""
        session = self._ctx.session
        if session.screen in SELLING_SCREENS and not session.locked:
            log.info("scanner %s: unreadable input shown: %s", event.device, event.reason)
            session.say(self._ctx.tr._("This barcode could not be read. Please scan it again."))

    def _tapped(self, event: CardTapped) -> None:
        if self._captures:
            self._captures[-1](event)
            return
        handler = self._taps.get(self._ctx.session.screen)
        if handler is not None:
            handler(event)
        else:
            log.info("card %s ignored on screen %s", event.uid, self._ctx.session.screen)
