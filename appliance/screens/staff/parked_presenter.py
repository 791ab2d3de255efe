"""Parked carts: the list, and one resumed onto the till."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import ListProperty

from appliance.core.cart import Cart
from appliance.errors import ApplianceError
from appliance.screens.presenters.cart import CartPresenter
from appliance.screens.presenters.context import ScreenContext
from appliance.store.parked_carts import ParkedCart

log = logging.getLogger(__name__)


class ParkedPresenter(EventDispatcher):
    """The parked carts as rows; resuming one puts it back on the (empty) till."""

    rows = ListProperty()  # {"park_id", "label", "when", "lines", "total"}

    def __init__(self, ctx: ScreenContext, cart: CartPresenter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._cart = cart
        self._parked = ctx.stores.parked
        self._listed: dict[str, ParkedCart] = {}  # as last shown, to put one back if need be
        ctx.session.bind(language=lambda *_args: self.refresh())

    def refresh(self) -> None:
        """Read the list again (the screen came up)."""
        tr = self._ctx.tr
        listed = self._parked.list()
        self._listed = {parked.park_id: parked for parked in listed}
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
            for parked in listed
        ]

    def resume(self, park_id: str) -> bool:
        """Put a parked cart back on the till; refused while the till has a cart of its own.

        It is taken from the store on the writer thread; until then the till's cart is held,
        so no scan can fill the till the parked cart is coming back to.
        """
        tr = self._ctx.tr
        session = self._ctx.session
        checkout = self._ctx.checkout
        cart_presenter = self._cart
        if not checkout.cart.is_empty:
            session.say(
                tr._("The till has a cart already. Finish or park it before resuming another."),
                "warning",
            )
            return False
        if cart_presenter.refuses_changes():
            return False
        cart_presenter.held = tr._("Wait a moment: the parked cart is being fetched.")
        currency = checkout.cart.currency
        self._ctx.writes.run(
            lambda: self._parked.take(park_id, currency=currency),
            lambda cart, error: self._taken(park_id, cart, error),
        )
        return True

    def _taken(self, park_id: str, cart: Cart | None, error: ApplianceError | None) -> None:
        """Back on the main thread: the cart onto the till, or say why not."""
        session = self._ctx.session
        self._cart.held = ""
        if cart is not None:
            try:
                self._ctx.checkout.resume(cart)  # the till is empty: its cart was held
            except ApplianceError as err:
                self._put_back(park_id, cart)
                cart, error = None, err
        self.refresh()
        if cart is None:
            log.warning("parked cart %s not resumed: %s", park_id, error)
            session.say(self._ctx.tr._("This parked cart could not be resumed."), "warning")
            return
        session.go("till")

    def _put_back(self, park_id: str, cart: Cart) -> None:
        """Park a taken cart again (under its old name) when the till could not take it."""
        was = self._listed.get(park_id)
        label, staff_id, total = (was.label, was.staff_id, was.total) if was else ("", "", 0)
        self._ctx.writes.run(
            lambda: self._parked.park(cart, label=label, staff_id=staff_id, total=total),
            lambda _parked, error: self._put_back_done(park_id, error),
        )

    def _put_back_done(self, park_id: str, error: ApplianceError | None) -> None:
        if error is not None:
            log.error("taken parked cart %s could not be put back: %s", park_id, error)
        self.refresh()
