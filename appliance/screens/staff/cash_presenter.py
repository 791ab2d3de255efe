"""A cash sale: the amount handed over, the change due, and the sale committed."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty

from appliance.core.checkout import CartChanged
from appliance.core.money import currency_exponent
from appliance.core.sale import Sale
from appliance.core.tender import Tender
from appliance.errors import ApplianceError
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.messages import customer_message

log = logging.getLogger(__name__)

# Notes a customer hands over, in major units; the quick buttons offer the next ones up.
NOTES = (5, 10, 20, 50, 100, 200, 500)
QUICK_BUTTONS = 5
MAX_DIGITS = 8  # typed in minor units: 999,999.99 is more cash than any till holds
CASH_SCREEN = "cash"


def quick_tenders(due: int, exponent: int) -> list[int]:
    """Amounts a customer is likely to hand over for `due`: exact, next whole, next notes."""
    unit = 10**exponent
    amounts = [due]
    whole = -(-due // unit) * unit
    candidates = [whole, *(note * unit for note in NOTES)]
    for amount in candidates:
        if amount > due and amount not in amounts:
            amounts.append(amount)
    return amounts[:QUICK_BUTTONS]


class CashPresenter(EventDispatcher):
    """The cash screen: due, handed over, change; Complete commits the sale."""

    due = NumericProperty(0)  # minor units
    due_text = StringProperty("")
    typed = StringProperty("")  # keypad digits, in minor units ("2000" is 20.00)
    tendered = NumericProperty(0)
    tendered_text = StringProperty("")
    change_text = StringProperty("")
    hint = StringProperty("")  # why Complete is not possible yet: the amount still due, ...
    can_complete = BooleanProperty(False)
    saving = BooleanProperty(False)  # the sale is being stored; Complete waits for it
    quick = ListProperty()  # [{"text": "€20.00", "amount": 2000}, ...]

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._currency = ctx.checkout.cart.currency
        self._exponent = currency_exponent(self._currency)
        # Figures for the cash screen only: `start()` brings them up to date when it opens.
        ctx.bus.subscribe(CartChanged, lambda _event: self._update_if_shown())
        ctx.session.bind(language=lambda *_args: self._update_if_shown())
        self._update()

    def start(self) -> None:
        """The cash screen came up: nothing handed over yet."""
        self.typed = ""
        self._update()

    def type(self, digits: str) -> None:
        """The keypad's digits changed."""
        self.typed = "".join(ch for ch in digits if ch.isdigit())[:MAX_DIGITS]
        self._update()

    def hand_over(self, amount: int) -> None:
        """A quick button: this much was handed over."""
        self.typed = str(amount)
        self._update()

    def complete(self) -> None:
        """Store the cash sale (off the main thread); AfterSale opens the drawer for it, then
        the receipt is offered."""
        self._update()
        if not self.can_complete or self.saving:
            return
        checkout = self._ctx.checkout
        tenders = [Tender.cash(self.tendered, self.due)] if self.due > 0 else []
        staff_id = self._ctx.session.staff_id
        self.saving = True
        self._ctx.writes.run(lambda: checkout.pay(tenders, staff=staff_id), self._stored)

    def _stored(self, sale: Sale | None, error: ApplianceError | None) -> None:
        self.saving = False
        session = self._ctx.session
        if sale is None:
            if error is not None:
                session.say(customer_message(self._ctx.tr, error), "warning")
            return
        log.info("cash sale %s: %d handed over, %d change", sale.id, self.tendered, sale.change)
        change = sale.change
        self.typed = ""
        session.finished(sale.id)
        if change:
            session.say(self._ctx.tr._("Give {change} change.").format(change=self._money(change)))

    def cancel(self) -> None:
        """Back to the till without paying."""
        self.typed = ""
        self._ctx.session.go("till")

    def _update_if_shown(self) -> None:
        if self._ctx.session.screen == CASH_SCREEN:
            self._update()

    def _update(self) -> None:
        tr = self._ctx.tr
        self.due = self._ctx.checkout.totals().total
        self.tendered = int(self.typed) if self.typed else 0
        self.due_text = self._money(self.due)
        self.tendered_text = self._money(self.tendered)
        missing = self.due - self.tendered
        cart = self._ctx.checkout.cart
        self.change_text = self._money(max(0, -missing))
        if cart.is_empty:
            self.hint = tr._("The cart is empty.")
        elif cart.pending_age_checks:
            self.hint = tr._("Confirm the buyer's age on the till first.")
        elif missing > 0:
            self.hint = tr._("{amount} still due").format(amount=self._money(missing))
        else:
            self.hint = ""
        self.can_complete = not self.hint
        self.quick = (
            [
                {"text": self._money(amount), "amount": amount}
                for amount in quick_tenders(self.due, self._exponent)
            ]
            if self.due > 0
            else []
        )

    def _money(self, minor: int) -> str:
        return self._ctx.tr.money(minor, self._currency)
