"""Refunds: find a sale by its receipt, choose what comes back, pay it back in cash or to card."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any, Literal

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty

from appliance.core.card_refund import CardPayBack, CardRefunded, OriginalPayment
from appliance.core.events import SaleCommitted
from appliance.core.ids import receipt_number
from appliance.core.money import currency_exponent
from appliance.core.payment import PaymentRequest
from appliance.core.sale import Sale, SaleDraft, SaleLine, draft_refund, refund_total
from appliance.core.staff import StaffMember
from appliance.core.tender import Tender
from appliance.errors import ApplianceError, DocumentError
from appliance.screens.customer.background import run_in_background
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter

log = logging.getLogger(__name__)

SCREEN = "refund"
# A cashier refunds up to this much (major units) alone; more needs a supervisor, because a
# large refund is where till fraud hides. Not configurable yet: every store so far agreed.
REFUND_APPROVAL_MAJOR = 50
RefundTo = Literal["cash", "card"]


class RefundPresenter(EventDispatcher):
    """The refund screen: the found sale's lines, what is chosen, and the refund committed."""

    digits = StringProperty("")  # typed receipt number, without the till's prefix
    prefix = StringProperty("")
    found = BooleanProperty(False)
    receipt = StringProperty("")
    sold_at = StringProperty("")
    rows = ListProperty()  # one dict per sale line
    total = NumericProperty(0)  # what the chosen items pay back (positive, minor units)
    total_text = StringProperty("")
    chosen = BooleanProperty(False)
    can_card = BooleanProperty(False)  # the sale was paid by card: it can go back there
    message = StringProperty("")
    saving = BooleanProperty(False)  # the refund is being stored; the buttons wait for it

    def __init__(self, ctx: ScreenContext, router: InputRouter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._ledger = ctx.services.app.ledger
        self.prefix = ctx.settings.device.receipt_prefix
        self._sale: Sale | None = None
        self._already: dict[int, int] = {}
        self._chosen: dict[int, int] = {}
        # While the terminal pays a card back: who approved it and who is refunding.
        self._paying_back: tuple[StaffMember | None, str] | None = None
        router.on_scan(SCREEN, self.find)
        ctx.bus.subscribe(CardRefunded, self._card_refunded)
        ctx.session.bind(language=lambda *_args: self._show())

    def start(self) -> None:
        """The refund screen came up: ask for a receipt."""
        self.clear()

    def clear(self) -> None:
        """Forget the sale on show."""
        self._sale = None
        self._already = {}
        self._chosen = {}
        self.digits = ""
        self.message = ""
        self._show()

    def type(self, digits: str) -> None:
        """The keypad's digits changed."""
        self.digits = "".join(ch for ch in digits if ch.isdigit())[:9]

    def find_typed(self) -> None:
        """Find the receipt whose number was typed (the digits after the prefix)."""
        if self.digits:
            self.find(receipt_number(self.prefix, int(self.digits)))

    def find(self, code: str) -> None:
        """A receipt's barcode (its number) or QR code (the sale id) was scanned or typed."""
        tr = self._ctx.tr
        code = code.strip()
        sale = self._ledger.by_receipt(code) or self._ledger.get(code)
        if sale is None:
            self.message = tr._("There is no receipt {number} on this till.").format(number=code)
            return
        if sale.kind != "sale":
            self.message = tr._(
                "Receipt {number} is not a sale; only sales can be refunded."
            ).format(number=sale.receipt_number)
            return
        self._sale = sale
        self._already = self._ledger.refunded_quantities(sale.id)
        self._chosen = {}
        self.digits = ""
        self.message = ""
        self._show()

    def more(self, line_no: int) -> None:
        """One more of a line comes back (a weighed line comes back whole)."""
        line = self._line(line_no)
        if line is None:
            return
        tr = self._ctx.tr
        left = line.quantity - self._already.get(line_no, 0)
        if left <= 0:
            self.message = tr._("Everything on this line was already refunded.")
            return
        chosen = self._chosen.get(line_no, 0)
        if chosen >= left:
            self.message = tr.n_(
                "Only {count} is left to refund on this line.",
                "Only {count} are left to refund on this line.",
                left,
            ).format(count=left)
            return
        self._chosen[line_no] = left if line.measure != "each" else chosen + 1
        self.message = ""
        self._show()

    def less(self, line_no: int) -> None:
        """One fewer of a line comes back."""
        line = self._line(line_no)
        chosen = self._chosen.get(line_no, 0)
        if line is None or chosen <= 0:
            return
        keep = 0 if line.measure != "each" else chosen - 1
        if keep:
            self._chosen[line_no] = keep
        else:
            self._chosen.pop(line_no, None)
        self._show()

    def everything(self) -> None:
        """Everything not yet refunded comes back."""
        sale = self._sale
        if sale is None:
            return
        left = {
            line.line_no: line.quantity - self._already.get(line.line_no, 0) for line in sale.lines
        }
        self._chosen = {n: q for n, q in left.items() if q > 0}
        if not self._chosen:
            self.message = self._ctx.tr._("Everything on this receipt was already refunded.")
        self._show()

    def needs_approval(self) -> bool:
        """True when the refund is over what a cashier may pay back alone."""
        staff = self._ctx.session.staff
        if staff is not None and staff.is_supervisor:
            return False
        return bool(self.total > self._approval_limit)

    def commit(self, to: RefundTo, approver: StaffMember | None = None) -> bool:
        """Store the refund off the main thread; then the drawer opens for cash (AfterSale)
        and its receipt is offered. False when it cannot start (the message says why)."""
        tr = self._ctx.tr
        session = self._ctx.session
        sale = self._sale
        if sale is None or not self._chosen:
            self.message = tr._("Choose what the customer brings back.")
            return False
        if session.staff is None:
            self.message = tr._("Please log in first.")
            return False
        if self.needs_approval() and not (approver is not None and approver.is_supervisor):
            self.message = tr._("A supervisor must approve a refund of more than {amount}.").format(
                amount=tr.money(self._approval_limit, sale.currency)
            )
            return False
        if self.saving:
            return False
        if to == "card" and any(t.kind == "card" for t in sale.tenders):
            return self._pay_back_to_card(sale, approver)
        return self._record(sale, session.staff_id, approver, None)

    def _record(
        self, sale: Sale, staff_id: str, approver: StaffMember | None, card: Tender | None
    ) -> bool:
        """Store the refund (cash, or the card part the terminal paid back) off the main thread."""
        try:
            draft = self._draft(sale, staff_id, approver, card)
        except ApplianceError as err:
            self._stored(None, err)
            return False
        self.saving = True
        self._ctx.writes.run(lambda: self._commit(draft), self._stored)
        return True

    def _commit(self, draft: SaleDraft) -> Sale:
        """On the writer thread: store the refund and say so, as `Checkout.pay` does a sale."""
        refund = self._ledger.commit(draft)
        # Posted before the write's outcome, so the receipt screen has the document to show.
        self._ctx.bus.post(SaleCommitted.of(refund))
        return refund

    def _stored(self, refund: Sale | None, error: ApplianceError | None) -> None:
        tr = self._ctx.tr
        self.saving = False
        sale = self._sale
        if isinstance(error, DocumentError):
            # Someone refunded the same items meanwhile (another till, an earlier try).
            log.info("refund refused: %s", error)
            if sale is not None:
                self.find(sale.id)  # show what is left now
            self.message = tr._("This refund is not possible: part of it was already refunded.")
            return
        if refund is None:
            log.warning("refund failed: %s", error)
            self.message = tr._("The refund could not be stored. Please try again.")
            return
        log.info(
            "refund %s of sale %s: %d",
            refund.receipt_number,
            sale.receipt_number if sale is not None else "?",
            refund.total,
        )
        self.clear()
        self._ctx.session.finished(refund.id)

    @property
    def _approval_limit(self) -> int:
        currency = self._sale.currency if self._sale else self._ctx.checkout.cart.currency
        return int(REFUND_APPROVAL_MAJOR * 10 ** currency_exponent(currency))

    def _pay_back_to_card(self, sale: Sale, approver: StaffMember | None) -> bool:
        """The terminal pays the card back first (off the main thread); then it is recorded."""
        tr = self._ctx.tr
        terminal = self._ctx.services.devices.terminal
        if terminal is None or terminal.health.state != "ok":
            self.message = tr._(
                "The card terminal is not available. Pay back in cash, or try again later."
            )
            return False
        # A refund's total is negative; the terminal pays back a positive amount.
        amount = -refund_total(sale, self._chosen, already_refunded=self._already)
        card = next(t for t in sale.tenders if t.kind == "card")
        journal, bus = self._ctx.stores.payments, self._ctx.bus
        pay_back = CardPayBack(terminal, journal, bus, device_id=self._ctx.settings.device.id)

        def job() -> None:
            attempt = journal.get(card.reference)  # the disk, on this worker thread
            original = (
                OriginalPayment(
                    attempt.reference,
                    attempt.amount,
                    attempt.receipt_number,
                    attempt.started_at.astimezone().date(),
                )
                if attempt is not None
                else None
            )
            try:
                pay_back.run(original, amount, sale.currency, date.today())
            except Exception as err:  # never leave the screen waiting for an answer
                log.exception("card refund failed before the terminal")
                failed = PaymentRequest(amount, sale.currency, "refund-not-started")
                bus.post(CardRefunded(failed, None, str(err)))

        self._paying_back = approver, self._ctx.session.staff_id
        self.saving = True
        self.message = tr._("Ask the customer to present their card at the terminal.")
        run_in_background("card-refund", job)
        return True

    def _card_refunded(self, event: CardRefunded) -> None:
        """Main thread: the terminal answered; an approval is recorded as the refund."""
        if self._paying_back is None or self._sale is None:
            log.warning("card refund %s answered late", event.request.merchant_reference)
            return
        (approver, staff_id), self._paying_back = self._paying_back, None
        result = event.result
        if result is None or result.outcome != "approved":
            self.saving = False
            why = result.message if result is not None else event.problem
            log.warning("card refund %s not paid: %s", event.request.merchant_reference, why)
            self.message = self._ctx.tr._(
                "The card refund did not go through. {reason} Nothing was paid back."
            ).format(reason=self._ctx.tr.message(why) if why else "?")
            return
        self.saving = False
        self._record(self._sale, staff_id, approver, event.tender())

    def _draft(
        self, sale: Sale, staff_id: str, approver: StaffMember | None, card: Tender | None
    ) -> SaleDraft:
        amount = refund_total(sale, self._chosen, already_refunded=self._already)
        tender = card if card is not None else Tender("cash", amount)
        return draft_refund(
            sale,
            self._chosen,
            [tender] if amount else [],
            already_refunded=self._already,
            device_id=self._ctx.settings.device.id,
            now=datetime.now(UTC),
            staff=staff_id,
            reason=f"approved by {approver.staff_id}" if approver is not None else "",
        )

    def _line(self, line_no: int) -> SaleLine | None:
        if self._sale is None:
            return None
        return next((x for x in self._sale.lines if x.line_no == line_no), None)

    def _show(self) -> None:
        tr = self._ctx.tr
        sale = self._sale
        self.found = sale is not None
        if sale is None:
            self.receipt = ""
            self.sold_at = ""
            self.rows = []
            self.total = 0
            self.total_text = ""
            self.chosen = False
            self.can_card = False
            return
        self.receipt = sale.receipt_number
        self.sold_at = tr.datetime(sale.created_at.astimezone())
        self.can_card = any(t.kind == "card" for t in sale.tenders)
        self.rows = [self._row(sale, line) for line in sale.lines]
        self.total = -refund_total(sale, self._chosen, already_refunded=self._already)
        self.total_text = tr.money(self.total, sale.currency)
        self.chosen = bool(self._chosen)

    def _row(self, sale: Sale, line: SaleLine) -> dict[str, Any]:
        tr = self._ctx.tr
        refunded = self._already.get(line.line_no, 0)
        chosen = self._chosen.get(line.line_no, 0)
        left = line.quantity - refunded
        if line.measure == "each":
            detail = tr._("{sold} sold, {refunded} refunded").format(
                sold=line.quantity, refunded=refunded
            )
        else:
            detail = (
                tr._("Weighed or priced by label: refunded whole")
                if not refunded
                else tr._("Already refunded")
            )
        return {
            "line_no": line.line_no,
            "name": line.name,
            "detail": detail,
            "amount": tr.money(line.amount, sale.currency),
            "chosen": str(chosen) if line.measure == "each" else ("1" if chosen else "0"),
            "can_more": chosen < left,
            "can_less": chosen > 0,
        }
