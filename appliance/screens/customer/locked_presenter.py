"""The fleet's lock as the customer meets it: scans refused in words, the sale resumed after."""

from __future__ import annotations

import logging

from appliance.core.events import KioskLockChanged
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter

log = logging.getLogger(__name__)

LOCKED = "locked"


class LockNotice:
    """Answers scans on the locked screen; after an unlock, goes back to an open sale."""

    def __init__(self, ctx: ScreenContext, router: InputRouter) -> None:
        self._ctx = ctx
        router.on_scan(LOCKED, self._scanned)
        # Subscribed after the session, so this runs once the session has gone home.
        ctx.bus.subscribe(KioskLockChanged, self._changed)

    def _scanned(self, code: str) -> None:
        log.info("scan %s refused: the checkout is locked", code)
        self._ctx.session.say(
            self._ctx.tr._("This checkout is closed. Please use another checkout."), "warning"
        )

    def _changed(self, event: KioskLockChanged) -> None:
        session = self._ctx.session
        if event.locked or session.mode != "kiosk" or session.screen != session.home:
            return
        if session.busy:
            session.go("payment")  # a payment in doubt still waits for staff
        elif not self._ctx.checkout.cart.is_empty:
            session.go("shop")
