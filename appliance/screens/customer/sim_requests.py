"""`appliance sim pay|cancel-payment|settle` with the window open: the screen's own intents.

A simulated kiosk is driven from another shell. Paying from there is what the customer does
by pressing Pay and choosing a method, and settling is what staff do on the payment screen,
so the screen decides: it refuses with its own reason, or the sale is the one it stores and
offers a receipt for. Main thread only: the SimPayment runs these from the bus.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

from appliance.core.card_payment import Settlement
from appliance.core.sale import Sale
from appliance.errors import ApplianceError, CartError, DomainError, TenderError
from appliance.screens.customer.payment_presenter import PaymentPresenter
from appliance.screens.presenters.cart import CartPresenter
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.lifecycle import when_app_stops

log = logging.getLogger(__name__)

PAYMENT = "payment"
# Where the Pay button is: the basket, its search, the staff till.
BASKET_SCREENS = frozenset({"welcome", "shop", "browse", "till"})
STARTABLE = frozenset({"choose", "declined", "cancelled"})
# The payment is still under way in these; any other state is its outcome.
UNDER_WAY = frozenset({"waiting", "saving", "split_card", "split_saving"})


class SimPayRequests:
    """Pays, cancels and settles as a person at the screen would; one request at a time."""

    def __init__(self, ctx: ScreenContext, cart: CartPresenter, payment: PaymentPresenter) -> None:
        self._ctx = ctx
        self._cart = cart
        self._payment = payment
        self._reply: Future[Any] | None = None  # answered with the screen's outcome
        payment.bind(state=self._state_changed, on_paid=self._paid)
        when_app_stops(lambda: self._fail(DomainError("the checkout screen stopped")))

    def pay(self, method: str, reply: Future[Sale]) -> None:
        """Press Pay on the basket, then the method: card at the terminal, or cash by staff."""
        self._check_free()
        self._open_payment_screen()
        payment = self._payment
        if payment.state not in STARTABLE:
            raise TenderError(f"the payment screen is busy ({payment.state})")
        if method == "card":
            if "card" not in payment.methods:
                raise TenderError("this checkout does not take cards")
            if not payment.card_ready:
                raise TenderError(payment.notice or "the card terminal is not available")
            payment.pay_card()
            started = payment.state == "waiting"
        else:
            payment.take_cash()
            started = payment.state == "saving"
        if not started:
            raise TenderError(payment.notice or f"the payment screen refused {method}")
        self._reply = reply

    def cancel_payment(self, reply: Future[None]) -> None:
        """Touch Cancel while the terminal has the payment."""
        if self._payment.state not in ("waiting", "split_card"):
            raise DomainError("no card payment is with the terminal")
        self._payment.cancel_card()  # how it ended goes to the `sim pay` that started it
        reply.set_result(None)

    def settle(self, settlement: Settlement, reference: str, reply: Future[Sale | None]) -> None:
        """The member of staff at the payment screen says whether the terminal took it."""
        payment = self._payment
        shown = payment.attempt_reference
        if reference and reference != shown:
            raise DomainError(f"card payment {reference} is not the one on the screen")
        if payment.state == "unknown":
            raise DomainError(
                "staff: tap your badge on the card reader, or type your PIN, on the screen first"
            )
        if payment.state != "resolve":
            raise DomainError("no card payment waits for staff on the screen")
        self._check_free()
        if settlement == "paid":
            self._reply = reply  # answered with the sale once it is stored
            payment.resolve_taken()
        else:
            payment.resolve_not_taken()
            reply.set_result(None)

    # -- the screen's answers -----------------------------------------------------------

    def _state_changed(self, payment: PaymentPresenter, state: str) -> None:
        if self._reply is None or state in UNDER_WAY:
            return
        reference = payment.attempt_reference
        if state == "unknown":
            self._fail(
                TenderError(
                    f"card payment {reference} unknown: recovery asks the terminal;"
                    " staff decide on the screen if it cannot"
                )
            )
        elif state in ("declined", "cancelled"):
            self._fail(TenderError(f"card payment {state}: {payment.notice}"))
        else:  # refused before charging, or charged but not stored: the screen says which
            self._fail(TenderError(payment.notice or f"payment ended {state}"))

    def _paid(self, _payment: PaymentPresenter, sale: Sale) -> None:
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_result(sale)

    def _fail(self, error: ApplianceError) -> None:
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            log.info("sim payment request answered: %s", error)
            reply.set_exception(error)

    # -- pressing Pay -------------------------------------------------------------------

    def _check_free(self) -> None:
        if self._reply is not None and not self._reply.done():
            raise TenderError("the screen is still paying for an earlier `sim` request")

    def _open_payment_screen(self) -> None:
        """What the basket's Pay button does, or why it would not: the cart and its checks."""
        session = self._ctx.session
        screen = session.screen
        if screen == PAYMENT:
            return
        cart = self._ctx.checkout.cart
        if cart.is_empty:
            raise CartError("the cart is empty: scan something first")
        if self._cart.held:
            raise CartError(self._cart.held)
        if pending := cart.pending_age_checks:
            if screen in BASKET_SCREENS:
                session.go("age_check")  # where Pay takes the customer: staff come to check
            names = ", ".join(line.name for line in pending)
            raise CartError(
                f"age check needed for: {names}; staff tap their badge or type their PIN"
            )
        if screen not in BASKET_SCREENS:
            raise TenderError(f"the screen shows {screen}: pay from the basket")
        session.go(PAYMENT)
        if session.screen != PAYMENT:
            raise TenderError(f"the screen shows {session.screen}: the checkout is closed")
