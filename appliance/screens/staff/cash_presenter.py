"""A cash sale: the amount handed over, the change due, and the sale committed.

Part of it may go on a card first ("Card for part"): the approved part is kept until the
one sale that carries both tenders commits, so staff cannot leave the screen with it unless
they undo it at the terminal. A failed commit keeps it, and Complete tries again without
asking the terminal a second time.
"""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    OptionProperty,
    StringProperty,
)

from appliance.core.card_payment import CardAvailability
from appliance.core.checkout import CartChanged
from appliance.core.money import currency_exponent
from appliance.core.payment import PaymentResult
from appliance.core.sale import Sale
from appliance.core.tender import Tender
from appliance.errors import ApplianceError
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.lifecycle import while_app_runs
from appliance.screens.presenters.messages import customer_message
from appliance.screens.presenters.split_card_part import CardPart

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

    due = NumericProperty(0)  # minor units, still to pay in cash (after a card part), rounded
    exact_due = NumericProperty(0)  # the same before cash rounding (what a card part may take)
    rounding_text = StringProperty("")  # "Rounded for cash from CHF 12.33" while it is
    due_label = StringProperty("")  # "Total due", or "Still due" once a card paid part
    due_text = StringProperty("")
    typed = StringProperty("")  # keypad digits, in minor units ("2000" is 20.00)
    tendered = NumericProperty(0)
    tendered_text = StringProperty("")
    change_text = StringProperty("")
    hint = StringProperty("")  # why Complete is not possible yet: the amount still due, ...
    can_complete = BooleanProperty(False)
    saving = BooleanProperty(False)  # the sale is being stored; Complete waits for it
    quick = ListProperty()  # [{"text": "€20.00", "amount": 2000}, ...]
    card_part_text = StringProperty("")  # "Card **** 1234: 12.50" once a card part is approved
    card_state = OptionProperty("none", options=["none", "asking", "held", "undoing"])
    card_offered = BooleanProperty(False)  # "Card for part" can be used now
    card_note = StringProperty("")  # why it cannot, or what the terminal is doing

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._currency = ctx.checkout.cart.currency
        self._exponent = currency_exponent(self._currency)
        # Figures for the cash screen only: `start()` brings them up to date when it opens.
        ctx.bus.subscribe(CartChanged, while_app_runs(lambda _event: self._update_if_shown()))
        ctx.session.bind(language=lambda *_args: self._update_if_shown())
        self._part = CardPart(ctx, self._card_answered, self._card_undone)
        ctx.bus.subscribe(CardAvailability, while_app_runs(lambda _event: self._update_if_shown()))
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
        card = self._part.tender
        tenders = [card] if card is not None else []
        if self.due > 0:
            tenders.append(Tender.cash(self.tendered, self.due))
        staff_id = self._ctx.session.staff_id
        self.saving = True
        self._ctx.writes.run(lambda: checkout.pay(tenders, staff=staff_id), self._stored)

    def _stored(self, sale: Sale | None, error: ApplianceError | None) -> None:
        self.saving = False
        session = self._ctx.session
        if sale is None:
            if self._part.held:  # kept: Complete stores the same card part again
                session.say(
                    self._ctx.tr._(
                        "The sale could not be saved. The card part is kept: "
                        "touch Complete sale to try again."
                    ),
                    "warning",
                )
            elif error is not None:
                session.say(customer_message(self._ctx.tr, error), "warning")
            return
        self._part.forget()  # the sale's own transaction settled it in the journal
        self._card_changed()
        log.info("cash sale %s: %d handed over, %d change", sale.id, self.tendered, sale.change)
        change = sale.change
        self.typed = ""
        session.finished(sale.id)
        if change:
            session.say(self._ctx.tr._("Give {change} change.").format(change=self._money(change)))

    def cancel(self) -> None:
        """Back to the till without paying; refused while a card part is not in a sale."""
        if self._part.busy:
            self._ctx.session.say(
                self._ctx.tr._("Complete the sale, or undo the card part first."), "warning"
            )
            return
        self.typed = ""
        self._ctx.session.go("till")

    # -- a card part -------------------------------------------------------------------

    def card_part(self) -> None:
        """Send the typed amount (or all still due) to the terminal as a part of the sale."""
        self._update()
        if not self.card_offered:
            return
        amount = int(self.typed) if self.typed else self.exact_due
        tr = self._ctx.tr
        if amount > self.exact_due:
            self._ctx.session.say(
                tr._("A card part cannot be more than the {amount} still due.").format(
                    amount=self._money(self.exact_due)
                ),
                "warning",
            )
            return
        if self._part.ask(amount, self._ctx.checkout.cart):
            self.typed = ""
            self._card_changed()

    def cancel_card_part(self) -> None:
        """Ask the terminal to stop the card part it has."""
        self._part.cancel()

    def undo_card_part(self) -> None:
        """Reverse the approved card part at the terminal; the amount is due again if it is."""
        if not self.saving and self._part.undo():
            self._card_changed()

    def _card_answered(self, result: PaymentResult | None, problem: str) -> None:
        tr = self._ctx.tr
        outcome = result.outcome if result is not None else "refused"
        log.info("card part on the cash screen: %s %s", outcome, problem)
        if outcome == "approved":
            text = ""
        elif outcome == "declined":
            text = tr._("The card was declined. Nothing was charged.")
        elif outcome == "cancelled":
            text = tr._("The card payment was cancelled. Nothing was charged.")
        elif outcome == "unknown":
            text = tr._(
                "The terminal could not say whether the card was charged. "
                "It is checked now, and undone if it was."
            )
        else:
            text = tr._("The card terminal did not take the payment. Nothing was charged.")
        if text:
            self._ctx.session.say(text, "warning")
        self._card_changed()

    def _card_undone(self, undone: bool, problem: str) -> None:
        tr = self._ctx.tr
        if undone:
            self._ctx.session.say(tr._("The card part was undone at the terminal."))
        else:
            log.warning("card part not undone: %s", problem)
            self._ctx.session.say(
                tr._("The card part could not be undone, so it is kept: {problem}").format(
                    problem=problem
                ),
                "warning",
            )
        self._card_changed()

    def _card_changed(self) -> None:
        part = self._part
        if part.undoing:
            self.card_state = "undoing"
        elif part.asking:
            self.card_state = "asking"
        else:
            self.card_state = "held" if part.held else "none"
        # Nothing may change the cart while a card part is with the terminal or unsold.
        self._ctx.session.busy = part.busy
        self._update()

    def _update_if_shown(self) -> None:
        if self._ctx.session.screen == CASH_SCREEN:
            self._update()

    def _update(self) -> None:
        tr = self._ctx.tr
        checkout = self._ctx.checkout
        self.exact_due = checkout.totals().total - self._part.amount
        # Cash pays its part rounded to the smallest coin where the store rounds (docs/cash.md).
        self.due = checkout.cash_due(self.exact_due) if self.exact_due > 0 else self.exact_due
        self.rounding_text = (
            tr._("Rounded for cash from {exact}").format(exact=self._money(self.exact_due))
            if self.due != self.exact_due
            else ""
        )
        self.due_label = tr._("Still due") if self._part.held else tr._("Total due")
        # A card part that paid it all leaves no cash to hand over, and so no change.
        paid_by_card = self._part.held and self.due <= 0
        self.tendered = int(self.typed) if self.typed and not paid_by_card else 0
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
        self.can_complete = not self.hint and self.card_state in ("none", "held")
        self._update_card()
        self.quick = (
            [
                {"text": self._money(amount), "amount": amount}
                for amount in quick_tenders(self.due, self._exponent)
            ]
            if self.due > 0
            else []
        )

    def _update_card(self) -> None:
        tr = self._ctx.tr
        tender = self._part.tender
        self.card_part_text = (
            tr._("Card {card}: {amount}").format(
                card=tender.card_mask or tr._("(no number)"), amount=self._money(tender.amount)
            )
            if tender is not None
            else ""
        )
        availability = self._part.availability()
        cart = self._ctx.checkout.cart
        if self.card_state == "asking":
            self.card_note = tr._("The card terminal has the card part. Follow it there.")
        elif self.card_state == "undoing":
            self.card_note = tr._("The card terminal is undoing the card part.")
        elif self.card_state == "held":
            self.card_note = ""
        elif not availability.offered:
            self.card_note = tr._("Card is not available: {reason}").format(
                reason=tr.message(availability.reason)
            )
        else:
            self.card_note = ""
        blocked = cart.is_empty or bool(cart.pending_age_checks)
        self.card_offered = (
            availability.offered and self.card_state == "none" and self.due > 0 and not blocked
        )

    def _money(self, minor: int) -> str:
        return self._ctx.tr.money(minor, self._currency)
