"""Paying at the kiosk: the methods on offer, the card terminal's states, a tapped card.

A card payment never runs twice for one sale by accident: the customer gets "Try again"
only after a clear decline or cancel. When the terminal cannot say whether it charged
("unknown"), the cart stays locked until a member of staff decides; when the charge went
through but the sale could not be stored, the approval is kept and only the commit is
retried.

A stored-value card that holds less than the total can pay what it holds, the rest by bank
card: the bank card is asked first, and the stored value is debited last, in the writer
step that commits the one sale. Once the bank card approved, its part is never dropped:
the customer taps again, or cancels and the terminal reverses it.
"""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, OptionProperty, StringProperty

from appliance.core.card_payment import (
    CardAnswered,
    CardAvailability,
    CardRecovered,
    ask_terminal,
    card_request,
    card_tender,
)
from appliance.core.devices import CardTapped, DeviceHealthChanged
from appliance.core.payment import PaymentRequest, PaymentResult, PaymentTerminal
from appliance.core.sale import Sale
from appliance.core.staff import StaffMember
from appliance.core.tender import Tender
from appliance.errors import ApplianceError
from appliance.screens.customer.background import run_in_background
from appliance.screens.customer.split_payment import SplitPayment
from appliance.screens.customer.staff_pin_presenter import StaffCheck
from appliance.screens.customer.stored_value_payment import StoredValuePayment
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter
from appliance.screens.presenters.lifecycle import when_app_stops

log = logging.getLogger(__name__)

SCREEN = "payment"
STATES = (
    "choose",  # the methods on offer
    "waiting",  # the terminal has the payment
    "declined",
    "cancelled",
    "unknown",  # the terminal could not say: staff must decide
    "resolve",  # a member of staff is deciding an unknown payment
    "saving",  # paid; the sale is being stored (off the main thread)
    "commit_failed",  # charged, but the sale is not stored yet
    "tap_card",  # waiting for a stored-value card
    "split_offer",  # the card holds too little: its balance and the rest by bank card?
    "split_card",  # the terminal has the rest
    "split_saving",  # the rest is paid; the stored value is debited with the sale
    "split_failed",  # the bank card paid the rest, the stored value did not go through
    "split_undoing",  # the terminal reverses the bank card's part
)
# While the cart is with the terminal, or paid but not stored, nothing may clear it.
BUSY_STATES = frozenset(
    {
        "waiting",
        "unknown",
        "resolve",
        "saving",
        "commit_failed",
        "split_card",
        "split_saving",
        "split_failed",
        "split_undoing",
    }
)


def _logged_only(_result: object, error: ApplianceError | None) -> None:
    if error is not None:
        log.error("card payment not recorded as not paid: %s", error)


class PaymentPresenter(EventDispatcher):
    """The payment screen's state and intents; main thread."""

    state = OptionProperty("choose", options=list(STATES))
    total = StringProperty("")
    methods = ListProperty()  # "card", "stored_value", "cash": what this screen offers
    card_ready = BooleanProperty(False)  # a terminal is there and healthy
    notice = StringProperty("")  # a line about the state: why the card is off, the balance...
    resolver = StringProperty("")  # the name of the staff member deciding an unknown payment
    split_offer = StringProperty("")  # "Pay 1.00 with this card and the rest by card"
    split_paid = StringProperty("")  # what the bank card paid of a split, for its panes

    __events__ = ("on_paid",)  # (sale): a sale paid on this screen was stored

    def __init__(
        self, ctx: ScreenContext, router: InputRouter, staff: StaffCheck, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._staff = staff
        self._stored_value = StoredValuePayment(ctx)
        self._request: PaymentRequest | None = None  # the card attempt in progress or in doubt
        self._result: PaymentResult | None = None  # its answer, kept until the sale is stored
        self._resolver: StaffMember | None = None
        router.on_tap(SCREEN, self._tapped)
        router.on_scan(SCREEN, self._scanned)
        ctx.bus.subscribe(CardAnswered, self._answered)
        # After `_answered`: that one still sees the split's request and leaves it alone.
        self._split = SplitPayment(
            ctx,
            self._stored_value,
            show=self._split_shown,
            store=self._store,
            staff=lambda: self._sale_staff(None),
            finish=self._finish,
        )
        ctx.bus.subscribe(DeviceHealthChanged, self._health_changed)
        ctx.bus.subscribe(CardAvailability, lambda _event: self._card_gate_changed())
        ctx.bus.subscribe(CardRecovered, self._recovered)
        ctx.session.bind(screen=self._screen_changed)
        self._stopped = False  # device news after the app stopped changes nothing on screen
        when_app_stops(self._stop)

    def _stop(self) -> None:
        self._stopped = True

    # -- intents -----------------------------------------------------------------------

    def pay_card(self) -> None:
        """Send the total to the card terminal; its answer arrives as CardAnswered."""
        if self.state not in ("choose", "declined", "cancelled"):
            return
        terminal = self._terminal()
        if terminal is None or self._gate_reason():
            self._card_unavailable()
            return
        checkout = self._ctx.checkout
        if checkout.totals().total <= 0:  # a card pays a positive amount only
            log.warning("card payment refused: the total is not positive")
            return
        cart = checkout.cart
        request = card_request(checkout.totals().total, cart.currency, self._ctx.settings.device.id)
        self._request, self._result = request, None
        self.notice = ""
        self.state = "waiting"
        log.info("card payment %s of %d started", request.merchant_reference, request.amount)
        bus, journal = self._ctx.bus, self._ctx.stores.payments

        # The customer's time at the terminal never blocks the screen; the attempt is
        # journalled on that thread before the terminal hears of it (the headless till's path).
        run_in_background(
            "card-payment",
            lambda: ask_terminal(terminal, request, bus, journal=journal, cart=cart),
        )

    def take_cash(self) -> None:
        """Staff took the exact total in cash for the cart (`appliance sim pay cash`)."""
        if self.state not in ("choose", "declined", "cancelled"):
            return
        total = self._ctx.checkout.totals().total
        who = self._sale_staff(None)
        self.notice = ""
        self.state = "saving"
        self._ctx.writes.run(lambda: self._store([Tender("cash", total)], who), self._cash_stored)

    def _cash_stored(self, sale: Sale | None, _error: ApplianceError | None) -> None:
        if sale is not None:
            self._finish(sale)
            return
        self.notice = self._ctx.tr._("The payment did not go through. Please try again.")
        self.state = "choose"

    @property
    def attempt_reference(self) -> str:
        """The card attempt in progress or in doubt on this screen; empty when none."""
        return self._request.merchant_reference if self._request is not None else ""

    def cancel_card(self) -> None:
        """Ask the terminal to stop; the state changes when the terminal answers."""
        terminal = self._ctx.services.devices.terminal
        if self.state == "waiting" and terminal is not None:
            terminal.cancel()
        elif self.state == "split_card":
            self._split.cancel_at_terminal()

    def pay_stored_value(self) -> None:
        """Wait for the customer's stored-value card on the reader."""
        if self.state in ("choose", "declined", "cancelled"):
            self.notice = ""
            self.state = "tap_card"

    def pay_cash(self) -> None:
        """A staffed till takes cash on its own screen."""
        if self.state == "choose" and "cash" in self.methods:
            self._ctx.session.go("cash")

    def choose_again(self) -> None:
        """Back to the list of methods (after a decline, a cancel, or from the card reader)."""
        if self.state in ("declined", "cancelled", "tap_card", "split_offer"):
            self.notice = ""
            self.state = "choose"

    def back(self) -> None:
        """Back to the basket, while nothing is with the terminal."""
        if self.state not in BUSY_STATES:
            self.state = "choose"
            self._ctx.session.go("shop")

    def retry_commit(self) -> None:
        """Store the sale of a charged card again; never charges the card again."""
        if self.state == "commit_failed":
            self._commit_card(self._resolver)

    def resolve_taken(self) -> None:
        """Staff saw the terminal take the payment: store the sale with its reference."""
        if self.state == "resolve":
            log.warning(
                "staff %s: card payment %s was taken",
                self._resolver.staff_id if self._resolver else "?",
                self._request.merchant_reference if self._request else "?",
            )
            self._commit_card(self._resolver)

    def resolve_not_taken(self) -> None:
        """Staff saw no payment: the customer chooses again."""
        if self.state == "resolve":
            log.warning(
                "staff %s: card payment %s was not taken",
                self._resolver.staff_id if self._resolver else "?",
                self._request.merchant_reference if self._request else "?",
            )
            if self._request is not None:  # closed in the journal: no sale may use it now
                reference, journal = self._request.merchant_reference, self._ctx.stores.payments
                self._ctx.writes.run(lambda: journal.settle_not_paid(reference), _logged_only)
            self._forget_card()
            self.state = "choose"

    # -- answers -----------------------------------------------------------------------

    def _answered(self, event: CardAnswered) -> None:
        if self._split.owns(event.request):
            return  # a split's bank card part: the split hears it
        if event.request is not self._request or self.state != "waiting":
            log.warning("answer for %s dropped", event.request.merchant_reference)
            return
        tr = self._ctx.tr
        result = event.result
        if result is None:
            log.warning("terminal refused the payment: %s", event.problem)
            self._forget_card()
            self.state = "choose"
            self._card_unavailable()
            return
        log.info("card payment %s: %s", result.merchant_reference, result.outcome)
        if result.outcome == "approved":
            self._result = result
            self._commit_card(None)
        elif result.outcome == "declined":
            # The terminal's own reason (PIN wrong, card not accepted, ...) in plain words.
            reason = tr.message(result.message) if result.message else ""
            self.notice = tr._("The card was declined. Try again, or choose another way to pay.")
            if reason:
                self.notice = tr._("{reason} Try again, or choose another way to pay.").format(
                    reason=reason
                )
            self.state = "declined"
        elif result.outcome == "cancelled":
            self.notice = tr._("The payment was cancelled. Nothing was charged.")
            self.state = "cancelled"
        else:
            self._result = result
            self.state = "unknown"
            self._staff.start(self._staff_arrived)
            gate = self._ctx.services.app.card_gate
            if gate is not None:  # the terminal may still say: recovery asks it
                gate.recover(result.merchant_reference)

    def _recovered(self, event: CardRecovered) -> None:
        """Recovery resolved the payment in doubt: sold, or nothing charged after all."""
        request = self._request
        if request is None or event.reference != request.merchant_reference:
            return
        if self.state not in ("unknown", "resolve"):
            return
        log.info("card payment %s resolved by recovery: %s", event.reference, event.resolution)
        if event.resolution == "completed":
            # Recovery sold the journalled cart; the cart held here is that same cart.
            self._forget_card()
            self._ctx.checkout.cancel()
            self.state = "choose"
            self._ctx.session.finished(event.sale_id)
        elif event.resolution in ("reversed", "not_charged"):
            self._forget_card()
            self.notice = self._ctx.tr._(
                "The payment did not go through. Nothing was charged. Please try again."
            )
            self.state = "cancelled"

    def _staff_arrived(self, member: StaffMember) -> None:
        if (desk := self._ctx.services.app.help_desk) is not None:
            desk.staff_arrived(member.name)  # answers the payment in doubt, clears the rest
        self._resolver = member
        self.resolver = member.name
        self.state = "resolve"

    def _commit_card(self, staff: StaffMember | None) -> None:
        request, result = self._request, self._result
        assert request is not None
        tender = [card_tender(request, result)]
        who = self._sale_staff(staff)
        self.state = "saving"
        journal = self._ctx.stores.payments

        def store() -> Sale | None:
            if staff is not None:  # staff decided a payment in doubt: the journal says so first
                attempt = journal.get(request.merchant_reference)
                if attempt is not None and attempt.state == "pending":
                    journal.decide_paid(request.merchant_reference, staff.name)
            return self._store(tender, who)

        self._ctx.writes.run(store, self._card_stored)

    def _card_stored(self, sale: Sale | None, _error: ApplianceError | None) -> None:
        if sale is None:
            self.notice = self._ctx.tr._(
                "Your card was charged, but the sale could not be saved. "
                "Please try again or ask a member of staff."
            )
            self.state = "commit_failed"
            return
        self._forget_card()
        self._finish(sale)

    def _store(self, tenders: list[Tender], staff_id: str) -> Sale | None:
        """On the writer thread: store the sale; None (logged) when the store refused it."""
        try:
            return self._ctx.checkout.pay(tenders, staff=staff_id)
        except ApplianceError as err:
            paid = ", ".join(f"{t.kind} {t.reference}" for t in tenders)
            log.error("payment by %s: sale not stored: %s", paid, err)
            return None

    def _sale_staff(self, staff: StaffMember | None) -> str:
        """Who answers for the sale: the logged-in staff, whoever decided, or the age check."""
        if self._ctx.session.staff_id:
            return self._ctx.session.staff_id
        if staff is not None:
            return staff.staff_id
        approvers = [x.age_approved_by for x in self._ctx.checkout.cart.lines if x.age_approved_by]
        return approvers[0] if approvers else ""

    def _finish(self, sale: Sale) -> None:
        log.info("sale %s paid", sale.receipt_number)
        self.dispatch("on_paid", sale)  # before the state: "choose" alone is no outcome
        self.state = "choose"
        self._ctx.session.finished(sale.id)

    def on_paid(self, sale: Sale) -> None:
        """Default handler of the `on_paid` event."""

    def _forget_card(self) -> None:
        self._request = self._result = self._resolver = None
        self.resolver = ""
        self._staff.stop()

    # -- stored value ------------------------------------------------------------------

    def _tapped(self, event: CardTapped) -> None:
        if self.state == "unknown":
            self._staff.badge(event.uid)
        elif self.state == "split_failed":
            self._split.debit(event.uid)  # "tap again", maybe with another card
        elif self.state in ("tap_card", "split_offer"):
            total = self._ctx.checkout.totals().total
            who = self._sale_staff(None)
            uid = event.uid
            self.state = "saving"
            self._ctx.writes.run(
                lambda: self._stored_value.pay(
                    uid, total, lambda tender: self._store([tender], who)
                ),
                lambda sale, _error: self._stored_value_paid(sale, uid),
            )

    def _stored_value_paid(self, sale: Sale | None, uid: str) -> None:
        if sale is not None:
            self._finish(sale)
            return
        tr = self._ctx.tr
        balance, total = self._stored_value.short, self._ctx.checkout.totals().total
        if 0 < balance < total and "card" in self.methods:
            self._split.offer(uid, balance)
            self.split_offer = tr._("Pay {balance} with this card and the rest by card").format(
                balance=self._money(balance)
            )
            self.notice = self._stored_value.problem  # what it has, and that it is not enough
            self.state = "split_offer"
            return
        self.state = "tap_card"
        self.notice = self._stored_value.problem or tr._(
            "The payment did not go through. Please try again."
        )

    # -- stored value plus bank card ---------------------------------------------------

    def pay_split(self) -> None:
        """Take the rest by bank card first; the stored value is debited once it is paid."""
        if self.state != "split_offer":
            return
        if not self._split.pay():
            self._card_unavailable()
            return
        self.notice = ""
        self.split_paid = self._money(self._split.rest())
        self.state = "split_card"

    def retry_split(self) -> None:
        """Debit the same stored-value card again; the bank card is not asked again."""
        if self.state == "split_failed":
            self._split.debit()

    def cancel_split(self) -> None:
        """Give up the split: the terminal reverses the bank card's part, then the cart is free."""
        if self.state == "split_failed":
            self._split.cancel()

    def _split_shown(self, state: str, notice: str) -> None:
        if state == "unavailable":  # the terminal refused before charging anything
            self.state = "choose"
            self._card_unavailable()
            return
        self.notice = notice
        self.state = state

    def _money(self, minor: int) -> str:
        return self._ctx.tr.money(minor, self._ctx.checkout.cart.currency)

    # -- the terminal and the screen ---------------------------------------------------

    def _terminal(self) -> PaymentTerminal | None:
        terminal = self._ctx.services.devices.terminal
        if terminal is None or terminal.health.state != "ok":
            return None
        return terminal

    def _gate_reason(self) -> str:
        """Why the card gate keeps card off now ("" when it offers card, or there is none)."""
        gate = self._ctx.services.app.card_gate
        if gate is None:
            return ""
        availability = gate.availability  # never waits: the gate's last answer
        return "" if availability.offered else availability.reason

    def _card_unavailable(self) -> None:
        self.card_ready = False
        tr = self._ctx.tr
        reason = self._gate_reason() if self._terminal() is not None else ""
        if reason:
            text = tr._("Card payment is not available now: {reason}").format(
                reason=tr.message(reason)
            )
        else:
            text = tr._("The card terminal is not available. Please choose another way to pay.")
        self.notice = text
        self._ctx.session.say(text, "warning")

    def _health_changed(self, event: DeviceHealthChanged) -> None:
        if event.health.kind == "payment_terminal" and not self._stopped:
            self._refresh_methods()

    def _card_gate_changed(self) -> None:
        if not self._stopped:
            self._refresh_methods()

    def _refresh_methods(self) -> None:
        settings = self._ctx.settings.screen
        staffed = self._ctx.session.mode == "staff"
        self.methods = [m for m in settings.payment_methods if m != "cash" or staffed]
        ready = self._terminal() is not None and not self._gate_reason()
        if self.card_ready and not ready and self._ctx.session.screen == SCREEN:
            self._card_unavailable()
        elif ready and not self.card_ready and self.state == "choose":
            self.notice = ""
        self.card_ready = ready

    def _screen_changed(self, _session: Any, screen: str) -> None:
        if screen != SCREEN:
            if self.state not in BUSY_STATES:
                self.state = "choose"  # e.g. an idle reset while waiting for a card tap
            return
        checkout = self._ctx.checkout
        self.total = self._ctx.tr.money(checkout.totals().total, checkout.cart.currency)
        if self.state not in BUSY_STATES:
            self.state = "choose"
            self.notice = ""
        self.card_ready = False
        self._refresh_methods()
        if "card" in self.methods and not self.card_ready:
            self._card_unavailable()

    def on_state(self, _presenter: Any, state: str) -> None:
        self._ctx.session.busy = state in BUSY_STATES

    def _scanned(self, code: str) -> None:
        log.info("scan %s during payment ignored", code)
        tr = self._ctx.tr
        if self.state in BUSY_STATES:
            text = tr._("Please finish paying first. Your basket cannot change now.")
        else:
            text = tr._("To add an item, go back to your basket first.")
        self._ctx.session.say(text, "warning")
