"""The cart as the screen shows it: rows of text, the total and the tax, and the scan intent."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty

from appliance.core.cart import Cart, CartLine, needs_weighing
from appliance.core.catalog import ProductMatch
from appliance.core.checkout import CartChanged
from appliance.core.scale import (
    InMotion,
    NotZeroed,
    Overload,
    Scale,
    StableWeight,
    Underload,
    WeighingError,
    weigh_for_sale,
)
from appliance.errors import DeviceError, DomainError
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.lifecycle import while_app_runs
from appliance.screens.presenters.messages import customer_message

log = logging.getLogger(__name__)


class CartPresenter(EventDispatcher):
    """Rows for the cart list, totals, and what the customer may do next."""

    rows = ListProperty()  # one dict per line, for a RecycleView
    total = StringProperty("")
    tax = StringProperty("")
    items = NumericProperty(0)
    empty = BooleanProperty(True)
    with_pictures = BooleanProperty(False)  # a line's product has a picture: rows show them
    needs_age_check = BooleanProperty(False)
    last_line_id = NumericProperty(-1)  # the line the last scan changed, to highlight it
    # While the cart is being parked or a parked one fetched (on the writer thread): why it
    # may not change, said to whoever tries. Empty when it may.
    held = StringProperty("")
    weighing = BooleanProperty(False)  # a weighed item waits for a stable weight

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._checkout = ctx.checkout
        self._currency = self._checkout.cart.currency
        self._catalog = ctx.services.app.lookup
        ctx.bus.subscribe(CartChanged, while_app_runs(lambda _event: self.refresh()))
        ctx.session.bind(language=lambda *_args: self.refresh())
        self.refresh()

    def scan(self, code: str) -> bool:
        """Add what a scan or a search picked; a refusal is shown, never raised."""
        if self.refuses_changes():
            return False
        before = self._checkout.cart.lines
        try:
            match = self._checkout.find(code)
            if needs_weighing(match):
                return self._weigh(match)
            cart = self._checkout.scan(code)
        except DomainError as err:
            self._ctx.session.say(customer_message(self._ctx.tr, err), "warning")
            return False
        changed = next((line for line in cart.lines if line not in before), None)
        if changed is not None:
            self.last_line_id = changed.line_id
        return True  # the rows follow from the CartChanged the checkout posted

    def _weigh(self, match: ProductMatch) -> bool:
        """Read a stable weight on a thread of its own; the line is added on the main thread."""
        if self.weighing:
            return False
        tr = self._ctx.tr
        name = match.product.name_in(self._ctx.session.language)
        self.weighing = True
        self._ctx.session.say(
            tr._("Weighing {name}: keep it still on the scale").format(name=name), "info"
        )
        scale = self._scale()
        generation = self._checkout.generation  # the sale this weight is for

        def weigh() -> None:
            try:
                grams = weigh_for_sale(scale, time.monotonic, time.sleep)
            except DeviceError as err:
                failed = err  # `err` is unbound after the except block; the callback runs later
                Clock.schedule_once(lambda _dt: self._weighed(match, generation, None, failed))
            except Exception as err:  # never leave the kiosk weighing for good
                log.exception("weighing %s failed", match.product.sku)
                crashed = DeviceError(f"{type(err).__name__}: {err}")
                Clock.schedule_once(lambda _dt: self._weighed(match, generation, None, crashed))
            else:
                Clock.schedule_once(lambda _dt: self._weighed(match, generation, grams, None))

        # The scale answers within seconds when the platter moves: never in a frame.
        threading.Thread(target=weigh, name="weigh", daemon=True).start()
        return True

    def _weighed(
        self, match: ProductMatch, generation: int, grams: int | None, error: DeviceError | None
    ) -> None:
        """Main thread: add the weighed line, or say why nothing was added."""
        self.weighing = False
        if grams is None:
            self._ctx.session.say(self._weighing_message(error), "warning")
            return
        if self.refuses_changes():  # parked or fetched while the weight settled
            return
        if generation != self._checkout.generation:
            # Paid, cancelled, parked or timed out while the weight settled: that weight
            # belongs to a sale that is over, never to the cart there is now.
            log.info("weight of %d g for %s dropped: its sale ended", grams, match.product.sku)
            self._ctx.session.say(
                self._ctx.tr._("The sale ended while the item was weighed: it was not added."),
                "warning",
            )
            return
        before = self._checkout.cart.lines
        try:
            cart = self._checkout.add_weighed(match, grams, generation=generation)
        except DomainError as err:
            self._ctx.session.say(customer_message(self._ctx.tr, err), "warning")
            return
        if (scale := self._scale()) is not None:
            scale.sold()  # the item may stay on the platter: it must not be sold again
        self._ctx.session.clear_message()
        changed = next((line for line in cart.lines if line not in before), None)
        if changed is not None:
            self.last_line_id = changed.line_id

    def _scale(self) -> Scale | None:
        devices = self._ctx.services.devices
        return devices.scale if devices is not None else None

    def _weighing_message(self, error: DeviceError | None) -> str:
        tr = self._ctx.tr
        log.info("not weighed: %s", error)
        reading = error.reading if isinstance(error, WeighingError) else None
        if isinstance(error, WeighingError) and reading is None:
            return tr._("This checkout has no scale. Please ask a member of staff.")
        if isinstance(reading, InMotion):
            return tr._("The scale did not settle. Keep the item still and scan it again.")
        if isinstance(reading, Underload):
            return tr._("The scale needs resetting. Please ask a member of staff.")
        if isinstance(reading, Overload):
            return tr._("This is too heavy for the scale. Please ask a member of staff.")
        if isinstance(reading, StableWeight):
            return tr._("Put the item on the scale, then scan it again.")
        if isinstance(reading, NotZeroed):
            return tr._("Take the last item off the scale, put this one on, then scan it again.")
        return tr._("The scale is not working. Please ask for help.")

    def plus(self, line_id: int) -> None:
        """One more of a line counted in items."""
        line = self._line(line_id)
        if line is not None and line.measure == "each":
            self._apply(lambda: self._checkout.set_quantity(line_id, line.quantity + 1))

    def minus(self, line_id: int) -> None:
        """One fewer; the last one removes the line."""
        line = self._line(line_id)
        if line is None:
            return
        if line.measure != "each" or line.quantity <= 1:
            self.remove(line_id)
        else:
            self._apply(lambda: self._checkout.set_quantity(line_id, line.quantity - 1))

    def remove(self, line_id: int) -> None:
        """Take a line off the cart."""
        self._apply(lambda: self._checkout.remove(line_id))

    def refresh(self) -> None:
        """Rebuild the rows from the checkout's cart."""
        cart = self._checkout.cart
        totals = self._checkout.totals()
        money = self._ctx.tr.money
        self.rows = [self._row(line) for line in cart.lines]
        self.with_pictures = any(row["picture"] for row in self.rows)
        self.total = money(totals.total, self._currency)
        self.tax = money(totals.taxes.tax, self._currency)
        self.items = sum(1 if line.measure != "each" else line.quantity for line in cart.lines)
        self.empty = cart.is_empty
        self.needs_age_check = bool(cart.pending_age_checks)

    def _row(self, line: CartLine) -> dict[str, Any]:
        tr = self._ctx.tr
        quantity = tr.kilograms(line.quantity) if line.measure == "weight" else str(line.quantity)
        return {
            "line_id": line.line_id,
            "name": line.name,
            "quantity": quantity,
            "countable": line.measure == "each",
            "amount": tr.money(line.amount, self._currency),
            "unit_price": tr.money(line.unit_price, self._currency),
            "discount": tr.money(-line.discount_amount, self._currency)
            if line.discount_amount
            else "",
            "needs_age_check": line.needs_age_check,
            "highlight": line.line_id == self.last_line_id,
            "picture": self._picture_of(line.sku),
        }

    def _picture_of(self, sku: str) -> str:
        """The picture file of a line's product ("" none); from the catalog in memory."""
        product = self._catalog.by_sku(sku)
        return self._catalog.picture_path(product.thumbnail) if product is not None else ""

    def _line(self, line_id: int) -> CartLine | None:
        return next((ln for ln in self._checkout.cart.lines if ln.line_id == line_id), None)

    def refuses_changes(self) -> bool:
        """True, and says why, while the cart is held for a write."""
        if self.held:
            self._ctx.session.say(self.held, "warning")
        return bool(self.held)

    def _apply(self, change: Any) -> None:
        if self.refuses_changes():
            return
        try:
            cart: Cart = change()
        except DomainError as err:
            self._ctx.session.say(customer_message(self._ctx.tr, err), "warning")
            return
        log.debug("cart now %d lines", len(cart.lines))  # rows follow from CartChanged
