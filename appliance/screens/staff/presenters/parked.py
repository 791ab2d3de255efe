"""Parked carts: the list, and one resumed onto the till."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import ListProperty

from appliance.errors import ApplianceError
from appliance.screens.presenters.context import ScreenContext
from appliance.store.parked_carts import ParkedCarts

log = logging.getLogger(__name__)


class ParkedPresenter(EventDispatcher):
    """The parked carts as rows; resuming one puts it back on the (empty) till."""

    rows = ListProperty()  # {"park_id", "label", "when", "lines", "total"}

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._parked = ParkedCarts(ctx.services.app.db)
        ctx.session.bind(language=lambda *_args: self.refresh())

    def refresh(self) -> None:
        """Read the list again (the screen came up)."""
        tr = self._ctx.tr
        self.rows = [
            {
                "park_id": parked.park_id,
                "label": parked.label or tr._("No name"),
                "when": tr.datetime(parked.parked_at.astimezone()),
                "lines": tr.n_("{count} line", "{count} lines", parked.lines).format(
                    count=parked.lines
                ),
                "total": tr.money(parked.total, parked.currency),
            }
            for parked in self._parked.list()
        ]

    def resume(self, park_id: str) -> bool:
        """Put a parked cart back on the till; refused while the till has a cart of its own."""
        tr = self._ctx.tr
        session = self._ctx.session
        checkout = self._ctx.checkout
        if not checkout.cart.is_empty:
            session.say(
                tr._("The till has a cart already. Finish or park it before resuming another."),
                "warning",
            )
            return False
        try:
            cart = self._parked.take(park_id)
            checkout.resume(cart)
        except ApplianceError as err:
            log.warning("parked cart %s not resumed: %s", park_id, err)
            session.say(tr._("This parked cart could not be resumed."), "warning")
            self.refresh()
            return False
        self.refresh()
        session.go("till")
        return True
