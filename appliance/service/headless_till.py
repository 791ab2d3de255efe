"""The headless till: scans and payments without a screen, through the kiosk's own path.

The kiosk routes a BarcodeScanned into `Checkout.scan`, asks the terminal with
`ask_terminal` off the main thread, hears CardAnswered on the bus, and turns a paid
attempt into a sale with `card_tender` and `Checkout.pay`. This till does the same, so a
behaviour proven headless holds for the kiosk. What a screen shows a member of staff (an
unknown outcome to settle) is an intent here (`settle`), driven by `appliance sim settle`.

Main thread only (its own state is not locked); `stop()` runs at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.core.card_payment import (
    CardAnswered,
    CardRecovered,
    Settlement,
    ask_terminal,
    card_request,
    card_tender,
)
from appliance.core.cart import needs_weighing
from appliance.core.catalog import ProductMatch
from appliance.core.checkout import Checkout
from appliance.core.devices import BarcodeScanned, CardTapped
from appliance.core.events import Event, EventBus
from appliance.core.payment import PaymentRequest, PaymentResult, PaymentTerminal
from appliance.core.sale import Sale
from appliance.core.scale import Scale, weigh_for_sale
from appliance.core.staff import StaffMember
from appliance.core.tender import Tender
from appliance.errors import (
    ApplianceError,
    CartError,
    DeviceError,
    DomainError,
    SalesPausedError,
    TenderError,
)
from appliance.store.payment_attempts import PaymentAttempt, PaymentAttempts

if TYPE_CHECKING:
    from appliance.service.card_gate import CardGate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Weighed(Event):
    """A scanned item's stable weight (or why there is none), read on the weighing thread."""

    match: ProductMatch
    scan: BarcodeScanned
    grams: int | None  # None: no sellable weight, `error` says why
    generation: int  # the sale it was weighed for (Checkout.generation)
    error: str = ""


SETTLE_HINT = "settle it with `appliance sim settle paid|not-paid`"


class HeadlessTill:
    """Scans into the cart and pays for it, cash or card, with no screen; main thread."""

    def __init__(
        self,
        checkout: Checkout,
        bus: EventBus,
        journal: PaymentAttempts,
        terminal: Callable[[], PaymentTerminal | None],
        *,
        device_id: str,
        take_scans: bool = True,
        staff_badge: Callable[[str], StaffMember | None] = lambda _uid: None,
        scale: Callable[[], Scale | None] = lambda: None,
    ) -> None:
        self._checkout = checkout
        self._scale = scale
        self._staff_badge = staff_badge  # who a tapped badge belongs to: approves ID checks
        self._bus = bus
        self._journal = journal
        self._terminal = terminal
        self._device_id = device_id
        # The attempt with the terminal (`_waiting`) or answered "unknown" in this run
        # (`_result` kept): while either is set, the cart may not change.
        self._request: PaymentRequest | None = None
        self._result: PaymentResult | None = None
        self._reply: Future[Sale] | None = None
        self._waiting = False
        self._stopped = False
        self._weighing = False  # an item is on its way from the scale to the cart
        self._gate: CardGate | None = None
        if take_scans:  # a kiosk's screen routes scans and taps itself
            bus.subscribe(BarcodeScanned, self._scanned)
            bus.subscribe(CardTapped, self._tapped)
            bus.subscribe(_Weighed, self._weighed)
        bus.subscribe(CardAnswered, self._answered)
        bus.subscribe(CardRecovered, self._recovered)

    def attach(self, gate: CardGate) -> None:
        """The card gate: card is paid only when it offers card."""
        self._gate = gate

    @property
    def busy(self) -> str:
        """Why the cart may not change now; empty when it may."""
        if self._waiting:
            return "a card payment is with the terminal"
        if self._request is not None:
            return f"card payment {self._request.merchant_reference} is in doubt: {SETTLE_HINT}"
        return ""

    # -- intents -----------------------------------------------------------------------

    def pay_cash(self) -> Sale:
        """Commit the cart paid in cash, the exact amount (rounded where cash is, docs/cash.md)."""
        self._check_can_pay()
        if any(a.state == "pending" for a in self._journal.open_attempts()):
            # A simulated kiosk's own payment screen has the cart at the terminal.
            raise TenderError("a card payment is with the terminal")
        due = self._checkout.cash_due(self._checkout.totals().total)
        sale = self._checkout.pay([Tender("cash", due)])
        log.info("cash sale %s committed, total %d", sale.receipt_number, sale.total)
        return sale

    def pay_card(self, reply: Future[Sale]) -> None:
        """Send the total to the terminal; `reply` gets the sale, or why there is none."""
        try:
            self._check_can_pay()
            gate = self._gate
            if gate is not None and not (availability := gate.availability).offered:
                # Recovery runs before card is offered: an earlier charge may stand.
                raise TenderError(f"card is not offered: {availability.reason}")
            if doubt := self._journal.open_attempts():
                raise TenderError(f"card payment {doubt[0].reference} is in doubt: {SETTLE_HINT}")
            terminal = self._terminal()
            if terminal is None or terminal.health.state != "ok":
                raise DomainError("the card terminal is not available")
        except ApplianceError as err:
            reply.set_exception(err)
            return
        cart = self._checkout.cart
        request = card_request(self._checkout.totals().total, cart.currency, self._device_id)
        self._request, self._result, self._reply, self._waiting = request, None, reply, True
        log.info("card payment %s of %d started", request.merchant_reference, request.amount)
        # The customer's time at the terminal never blocks the main loop; a daemon thread,
        # so a terminal that ignores the cancel at shutdown cannot hold the process.
        threading.Thread(
            target=ask_terminal,
            args=(terminal, request, self._bus),
            kwargs={"journal": self._journal, "cart": cart},
            name="card-payment",
            daemon=True,
        ).start()

    def cancel_card(self) -> None:
        """Ask the terminal to abort; it answers "cancelled", or "unknown" if it stays silent."""
        terminal = self._terminal()
        if not self._waiting or terminal is None:
            raise DomainError("no card payment is with the terminal")
        terminal.cancel()

    def settle(self, settlement: Settlement, reference: str = "") -> Sale | None:
        """Staff decide an unknown outcome: "paid" commits the sale, "not-paid" keeps the cart.

        Without `reference`: the attempt in doubt in this run, or the only one left by an
        earlier run. Each attempt is settled once; the store refuses a second sale on it.
        """
        if self._waiting:
            raise DomainError("the terminal still has the payment: wait for its answer")
        if self._request is not None and reference in ("", self._request.merchant_reference):
            decided = self._request.merchant_reference
            sale = self._settle_current(settlement)
        else:
            attempt = self._recorded(reference)
            decided = attempt.reference
            sale = self._settle_recorded(settlement, attempt)
        if self._gate is not None:
            self._gate.settled(decided)
        return sale

    def stop(self) -> None:
        """At shutdown: cancel a payment in flight, record it in doubt, answer its caller."""
        self._stopped = True
        if self._waiting:
            terminal = self._terminal()
            if terminal is not None:
                terminal.cancel()
            try:
                in_doubt = self._journal.abandon_in_flight()
            except ApplianceError as err:  # the row stays "sent": found in doubt at start
                log.error("in-flight card payment not marked in doubt: %s", err)
                in_doubt = []
            reference = self._request.merchant_reference if self._request else "?"
            log.warning("stopping with card payment %s in flight: %s", reference, in_doubt)
        self._fail_reply(DomainError(f"the appliance is stopping; {SETTLE_HINT} after the start"))

    # -- answers -----------------------------------------------------------------------

    def _scanned(self, event: BarcodeScanned) -> None:
        if self.busy:
            log.warning("scan %s on %s refused: %s", event.code, event.device, self.busy)
            return
        before = self._checkout.cart.lines
        try:
            match = self._checkout.find(event.code)
            if needs_weighing(match):
                if self._weighing:
                    # One platter: a second item weighed now would read the first one too.
                    log.warning("scan %s on %s refused: still weighing", event.code, event.device)
                    return
                self._weighing = True
                # The scale answers in up to seconds (motion): never on the main loop.
                threading.Thread(
                    target=self._weigh,
                    args=(match, event, self._checkout.generation),
                    name="weigh",
                    daemon=True,
                ).start()
                return
            cart = self._checkout.scan(event.code)
        except DomainError as err:
            log.warning("scan %s on %s refused: %s", event.code, event.device, err)
            return
        added = next((line for line in cart.lines if line not in before), None)
        name = added.name if added is not None else "?"
        log.info("scanned %s on %s: %s", event.code, event.device, name)

    def _weigh(self, match: ProductMatch, event: BarcodeScanned, generation: int) -> None:
        """The weighing thread: a stable weight from the scale, handed to the main thread."""
        try:
            grams = weigh_for_sale(self._scale(), time.monotonic, time.sleep)
        except DeviceError as err:
            self._bus.post(_Weighed(match, event, None, generation, str(err)))
        except Exception as err:  # never leave the till weighing for good
            log.exception("weighing %s failed", event.code)
            error = f"{type(err).__name__}: {err}"
            self._bus.post(_Weighed(match, event, None, generation, error))
        else:
            self._bus.post(_Weighed(match, event, grams, generation))

    def _weighed(self, weighed: _Weighed) -> None:
        """Main thread: the weighed line into the cart, or why not."""
        self._weighing = False
        event, match, grams = weighed.scan, weighed.match, weighed.grams
        if grams is None:
            log.warning("scan %s on %s not weighed: %s", event.code, event.device, weighed.error)
            return
        # The weighing took up to seconds: a card payment may have started or be in doubt
        # since, and its cart must not change under it.
        if self.busy:
            log.warning("weighed %s on %s refused: %s", event.code, event.device, self.busy)
            return
        try:
            # Refused if the sale it was weighed for ended meanwhile (paid, cancelled, settled).
            self._checkout.add_weighed(match, grams, generation=weighed.generation)
        except DomainError as err:
            log.warning("weighed %s on %s refused: %s", event.code, event.device, err)
            return
        if (scale := self._scale()) is not None:
            scale.sold()  # the item may stay on the platter: it must not be sold again
        name = match.product.name
        log.info("weighed %s on %s: %s, %d g", event.code, event.device, name, grams)

    def _tapped(self, event: CardTapped) -> None:
        texts = [r.text for r in event.records if r.text is not None]
        log.info("card %s tapped on %s%s", event.uid, event.device, f": {texts}" if texts else "")
        if not self._checkout.cart.pending_age_checks:
            return
        member = self._staff_badge(event.uid)
        if member is None:
            log.info("card %s is not a staff badge: the ID check still waits", event.uid)
            return
        try:
            self._checkout.approve_age(member.staff_id)
        except DomainError as err:
            log.warning("ID check not approved by %s: %s", member.staff_id, err)
            return
        log.info("ID check approved by staff %s (badge)", member.staff_id)

    def _answered(self, event: CardAnswered) -> None:
        if self._stopped or event.request is not self._request or not self._waiting:
            if self._stopped or self._request is not None:  # else the screen's payment
                log.warning("answer for %s dropped", event.request.merchant_reference)
            return
        self._waiting = False
        result = event.result
        if result is None:
            self._forget(TenderError(f"the terminal refused the payment: {event.problem}"))
            return
        log.info("card payment %s: %s", result.merchant_reference, result.outcome)
        if result.outcome == "approved":
            self._result = result
            with contextlib.suppress(ApplianceError):  # logged, and its caller answered
                self._commit(card_tender(event.request, result))
        elif result.outcome == "unknown":
            # Never taken as paid or as not paid: the cart stays locked until recovery asks
            # the terminal, or staff decide.
            self._result = result
            self._fail_reply(
                TenderError(f"card payment {result.merchant_reference} unknown: {SETTLE_HINT}")
            )
            if self._gate is not None:
                self._gate.recover(result.merchant_reference)
        else:
            self._forget(TenderError(f"card payment {result.outcome}"))

    def _recovered(self, event: CardRecovered) -> None:
        """Recovery resolved this run's attempt in doubt: the cart is free again."""
        request = self._request
        if request is None or self._waiting or event.reference != request.merchant_reference:
            return
        if event.resolution in ("reversed", "not_charged"):
            log.warning("card payment %s %s: the cart is free", event.reference, event.resolution)
            self._forget()
        elif event.resolution == "completed":
            # Recovery sold the journalled cart: the one still held here is that same cart.
            log.info("card payment %s completed as %s", event.reference, event.receipt_number)
            self._forget()
            self._checkout.cancel()

    # -- settling ----------------------------------------------------------------------

    def _settle_current(self, settlement: Settlement) -> Sale | None:
        request = self._request
        assert request is not None
        log.warning("staff: card payment %s settled %s", request.merchant_reference, settlement)
        if settlement == "paid":
            attempt = self._journal.get(request.merchant_reference)
            if attempt is not None and attempt.state == "pending":
                self._journal.decide_paid(request.merchant_reference, "staff")
            return self._commit(card_tender(request, self._result))
        self._journal.settle_not_paid(request.merchant_reference)
        self._forget()
        return None

    def _recorded(self, reference: str) -> PaymentAttempt:
        found = self._journal.open_attempts()
        if reference:
            found = [a for a in found if a.reference == reference]
            if not found:
                attempt = self._journal.get(reference)
                state = attempt.state if attempt is not None else "unknown to this till"
                raise DomainError(f"card payment {reference} is not in doubt ({state})")
        if not found:
            raise DomainError("no card payment is in doubt")
        if len(found) > 1:
            names = ", ".join(a.reference for a in found)
            raise DomainError(f"several card payments are in doubt; name one: {names}")
        return found[0]

    def _settle_recorded(self, settlement: Settlement, attempt: PaymentAttempt) -> Sale | None:
        """An attempt an earlier run left in doubt: its cart comes back to be sold or kept."""
        log.warning("staff: card payment %s settled %s", attempt.reference, settlement)
        if attempt.cart is None:
            raise DomainError(f"card payment {attempt.reference} has no cart recorded")
        if settlement == "not-paid":
            self._journal.settle_not_paid(attempt.reference)
            if self._checkout.cart.is_empty:
                self._checkout.resume(attempt.cart)  # the customer still has their cart
            return None
        if not self._checkout.cart.is_empty:
            raise CartError("finish or park the cart in progress before settling this payment")
        self._checkout.resume(attempt.cart)
        try:
            if attempt.state == "pending":
                self._journal.decide_paid(attempt.reference, "staff")
            return self._record_sale(card_tender(attempt.request(), attempt.result()))
        except ApplianceError:
            self._checkout.cancel()  # the cart in doubt stays recorded with its attempt
            raise

    def _commit(self, tender: Tender) -> Sale:
        """Store the sale of a charged card; the attempt closes in the same transaction."""
        try:
            sale = self._record_sale(tender)
        except ApplianceError as err:
            # Charged but not stored: the attempt stays open, `settle paid` stores it again.
            log.error("card payment %s: sale not stored: %s", tender.reference, err)
            self._fail_reply(err)
            raise
        self._forget()
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_result(sale)
        return sale

    def _record_sale(self, tender: Tender) -> Sale:
        sale = self._checkout.pay([tender])
        log.info("card sale %s committed, total %d", sale.receipt_number, sale.total)
        return sale

    def _check_can_pay(self) -> None:
        if self.busy:
            raise TenderError(self.busy)
        if self._weighing:
            # Its line would land after the total was taken: the tenders would not cover it.
            raise TenderError("an item is still being weighed: wait for its weight")
        cart = self._checkout.cart
        if cart.is_empty:
            if paused := self._checkout.paused:
                # The scan was refused for this reason; "the cart is empty" would hide it.
                raise SalesPausedError(f"no new sale now: {paused}")
            raise CartError("the cart is empty: scan something first")
        if pending := cart.pending_age_checks:
            # Before the terminal is asked: the sale would be refused after the charge.
            names = ", ".join(line.name for line in pending)
            raise CartError(f"age check needed for: {names}")

    def _forget(self, error: ApplianceError | None = None) -> None:
        """The attempt is over (sold, declined, settled): the cart may change again."""
        self._request = self._result = None
        self._waiting = False
        if error is not None:
            self._fail_reply(error)

    def _fail_reply(self, error: ApplianceError) -> None:
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_exception(error)
