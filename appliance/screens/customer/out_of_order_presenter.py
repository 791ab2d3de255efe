"""The out-of-order screen's answer to scans: refused in words, nothing lands in a cart."""

from __future__ import annotations

import logging

from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter
from appliance.screens.presenters.session import OUT_OF_ORDER_SCREEN

log = logging.getLogger(__name__)


class OutOfOrderNotice:
    """Answers scans while the checkout is out of order (its storage cannot take a sale)."""

    def __init__(self, ctx: ScreenContext, router: InputRouter) -> None:
        self._ctx = ctx
        router.on_scan(OUT_OF_ORDER_SCREEN, self._scanned)

    def _scanned(self, code: str) -> None:
        log.info("scan %s refused: %s", code, self._ctx.session.storage_problem)
        self._ctx.session.say(
            self._ctx.tr._("This checkout is out of order. Please ask a member of staff."),
            "warning",
        )
