"""Card recovery: every attempt that is not final is resolved before card is offered again.

Runs at start and after a payment ended "unknown" (a dropped link, a silent terminal), on a
worker thread: it talks to the terminal. The rules, in the order they are applied:

- A pending attempt is looked up at the terminal (Status Enquiry, then Repeat Receipt).
  The terminal shows only its last transaction, and card is never offered while an
  attempt is unresolved, so at most one attempt can be the one it shows: it is ours when
  the amount matches and its receipt number is not one the journal already holds.
- A charge found that way was never acknowledged to the terminal, so the kiosk never
  released the goods: it is reversed by its receipt number. One the terminal already
  reversed itself (its last transaction is the reversal of it) is recorded as reversed.
- An approval the journal holds whose sale never committed: if the terminal reversed it
  itself (our acknowledgement never reached it), it is recorded as reversed; otherwise
  the approval stands, the customer saw "approved" at the terminal, and the sale is
  completed from the recorded cart. When the approval covers only part of the cart (a
  split tender whose other part never came), the goods were not released: it is reversed.
- A pending attempt the terminal has no trace of was never charged: declined.

Never a refund or a repeat sent blindly; a terminal that cannot be reached leaves the
attempt pending and card off, for staff to see on the till and in `appliance status`.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from appliance.core.card_payment import card_tender
from appliance.core.cart import Cart
from appliance.core.payment import PaymentRequest, PaymentResult, PaymentTerminal
from appliance.core.sale import Sale
from appliance.core.tender import Tender
from appliance.errors import ApplianceError, DeviceError
from appliance.store.payment_attempts import PaymentAttempt, PaymentAttempts

log = logging.getLogger(__name__)

Resolution = Literal["completed", "reversed", "not_charged", "needs_staff"]
RECOVERY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Recovered:
    """How one attempt was resolved, and what a person should know of it."""

    reference: str
    resolution: Resolution
    detail: str
    sale: Sale | None = None


# Commits a cart with its tenders, apart from the cart in progress (Checkout.complete).
CompleteSale = Callable[[Cart, list[Tender]], Sale]
# Covers the cart: the total the cart's sale would have (taxes included).
CartTotal = Callable[[Cart], int]


class CardRecovery:
    """Resolves the journal's open card attempts with the terminal; worker thread, blocking."""

    def __init__(
        self,
        journal: PaymentAttempts,
        terminal: PaymentTerminal,
        complete: CompleteSale,
        cart_total: CartTotal,
        *,
        timeout: float = RECOVERY_TIMEOUT_SECONDS,
    ) -> None:
        self._journal = journal
        self._terminal = terminal
        self._complete = complete
        self._cart_total = cart_total
        self._timeout = timeout

    def run(self, only: frozenset[str] | None = None) -> list[Recovered]:
        """Resolve every open attempt it can (or those in `only`); the rest stay open.

        At start every open attempt is an earlier run's. While the till runs, only the
        attempts a caller names are touched: an approved card part a screen still holds
        for its sale is not recovery's to complete or reverse.
        """

        def wanted(attempts: list[PaymentAttempt]) -> list[PaymentAttempt]:
            return [a for a in attempts if only is None or a.reference in only]

        if not (open_attempts := wanted(self._journal.open_attempts())):
            return []
        try:
            last = self._terminal.last_transaction(timeout=self._timeout)
        except DeviceError as err:
            why = f"the terminal cannot be asked: {err}"
            found = [Recovered(a.reference, "needs_staff", why) for a in open_attempts]
        else:
            found = []
            if pending := wanted(self._journal.pending()):
                found += self._look_up(pending, last)
            for attempt in wanted(self._journal.open_attempts()):
                found.append(self._finish_approved(attempt, last))
        for item in found:
            level = logging.WARNING if item.resolution == "needs_staff" else logging.INFO
            log.log(level, "card payment %s %s: %s", item.reference, item.resolution, item.detail)
        return found

    # -- pending: what did the terminal do? ----------------------------------------------

    def _look_up(
        self, pending: list[PaymentAttempt], last: PaymentResult | None
    ) -> list[Recovered]:
        newest, older = pending[-1], pending[:-1]
        # Only the newest can be the terminal's last transaction; before it, card was off.
        results = [self._not_charged(a, "the terminal has a later transaction") for a in older]
        if last is None:
            results.append(self._not_charged(newest, "the terminal has no transaction"))
        elif self._journal.knows_receipt(last.terminal_id, last.receipt_number):
            results.append(self._not_charged(newest, "the terminal did nothing since"))
        elif last.amount != newest.amount:
            detail = (
                f"the terminal's last transaction ({last.amount}, receipt {last.receipt_number})"
                " is not this one: check the terminal's journal"
            )
            results.append(Recovered(newest.reference, "needs_staff", detail))
        elif last.outcome != "approved":
            self._journal.answered(newest.request(), _as_ours(last, newest))
            results.append(Recovered(newest.reference, "not_charged", last.message or "declined"))
        elif newest.kind == "reversal":
            self._journal.answered(newest.request(), _as_ours(last, newest))
            self._journal.close(newest.reference)
            self._journal.reversed(newest.original_reference, "reversed at the terminal")
            results.append(Recovered(newest.original_reference, "reversed", "reversal found"))
        elif last.reverses_trace:
            # The terminal charged and reversed it itself: our ack never reached it.
            self._journal.reversed(newest.reference, "reversed by the terminal itself")
            results.append(Recovered(newest.reference, "reversed", "the terminal reversed it"))
        elif newest.kind == "payment":
            results.append(self._reverse(newest, last, "charged, never acknowledged", found=True))
        else:  # a refund the terminal paid: the refund document is staff's to record
            self._journal.answered(newest.request(), _as_ours(last, newest))
            detail = f"refund paid at the terminal (receipt {last.receipt_number}); record it"
            results.append(Recovered(newest.reference, "needs_staff", detail))
        return results

    def _not_charged(self, attempt: PaymentAttempt, why: str) -> Recovered:
        self._journal.settle_not_paid(attempt.reference, who="recovery")
        return Recovered(attempt.reference, "not_charged", why)

    # -- approved without a sale ---------------------------------------------------------

    def _finish_approved(self, attempt: PaymentAttempt, last: PaymentResult | None) -> Recovered:
        """An approval no document carries: completed, reversed, or left to staff."""
        if attempt.kind == "reversal":  # it went through; only its closing was missed
            self._journal.close(attempt.reference)
            self._journal.reversed(attempt.original_reference, "reversed at the terminal")
            return Recovered(attempt.original_reference, "reversed", "reversal found")
        if attempt.kind == "refund":
            detail = f"refund paid at the terminal (receipt {attempt.receipt_number}); record it"
            return Recovered(attempt.reference, "needs_staff", detail)
        if last is not None and last.reverses_trace and last.reverses_trace == attempt.trace_number:
            # Our ack never reached the terminal (a crash right after the journal wrote the
            # approval): it reversed the payment itself, so no sale may carry it.
            self._journal.reversed(attempt.reference, "reversed by the terminal itself")
            return Recovered(attempt.reference, "reversed", "the terminal reversed it")
        if self._journal.reversal_of(attempt.reference) is not None:
            return self._reverse(attempt, attempt.result(), "its reversal did not go through")
        cart = attempt.cart
        if cart is None or self._cart_total(cart) != attempt.amount:
            return self._reverse(attempt, attempt.result(), "the rest of the sale was never paid")
        try:
            sale = self._complete(cart, [card_tender(attempt.request(), attempt.result())])
        except ApplianceError as err:
            return Recovered(attempt.reference, "needs_staff", f"the sale cannot be stored: {err}")
        return Recovered(attempt.reference, "completed", f"sale {sale.receipt_number}", sale)

    def _reverse(
        self, attempt: PaymentAttempt, charged: PaymentResult, why: str, *, found: bool = False
    ) -> Recovered:
        """Undo a charge by its receipt number; the reversal is journalled before it is sent."""
        if not charged.receipt_number:
            return Recovered(attempt.reference, "needs_staff", f"{why}; no receipt number")
        request = PaymentRequest(
            attempt.amount, attempt.currency, f"{attempt.reference[:24]}-R{uuid.uuid4().hex[:6]}"
        )
        charge = _as_ours(charged, attempt) if found else None
        try:
            self._journal.begin_reversal(request, attempt.reference, charge)
            result = self._terminal.reverse(
                charged.receipt_number,
                request,
                timeout=self._timeout,
                record=lambda answer: self._journal.answered(request, answer),
            )
            self._journal.answered(request, result)
        except ApplianceError as err:
            return Recovered(attempt.reference, "needs_staff", f"{why}; reversal failed: {err}")
        if result.outcome != "approved":
            detail = f"{why}; the terminal refused the reversal: {result.message}"
            return Recovered(attempt.reference, "needs_staff", detail)
        self._journal.close(request.merchant_reference)
        self._journal.reversed(attempt.reference, f"{why}: reversed")
        return Recovered(attempt.reference, "reversed", why)


def _as_ours(found: PaymentResult, attempt: PaymentAttempt) -> PaymentResult:
    """The terminal's record of an attempt, filed under the attempt's own reference."""
    return dataclasses.replace(found, merchant_reference=attempt.reference, receipt_lines=())
