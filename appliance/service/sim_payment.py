"""`appliance sim pay`: pays for the simulated till's cart the way the checkout screen will.

The control socket runs on its own thread; the cart belongs to the main loop. So a request
is posted to the bus with a Future, the main loop commits the sale, and the socket thread
answers with the receipt number. A card payment asks the payment terminal off the main loop.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from appliance.core.checkout import Checkout
from appliance.core.events import Event, EventBus
from appliance.core.payment import PaymentRequest, PaymentResult, PaymentTerminal
from appliance.core.tender import Tender
from appliance.errors import DomainError, TenderError

log = logging.getLogger(__name__)

REPLY_SECONDS = 60.0


@dataclass(frozen=True, slots=True, eq=False)
class PayRequested(Event):
    """Someone asked the simulated till to pay for its cart (cash or card)."""

    method: str
    reply: Future[dict[str, Any]]


@dataclass(frozen=True, slots=True, eq=False)
class TerminalAnswered(Event):
    """The payment terminal answered a card payment started for a PayRequested."""

    result: PaymentResult
    amount: int
    reply: Future[dict[str, Any]]


class SimPayment:
    """Main-loop side of `sim pay`; `request()` is the control socket's side."""

    def __init__(self, bus: EventBus, checkout: Checkout, terminal: PaymentTerminal | None) -> None:
        self._bus = bus
        self._checkout = checkout
        self._terminal = terminal
        self._attempts = 0
        bus.subscribe(PayRequested, self._pay)
        bus.subscribe(TerminalAnswered, self._answered)

    def request(self, method: str) -> dict[str, Any]:
        """Ask the main loop to pay; blocks the calling (socket) thread for the answer."""
        if method not in ("cash", "card"):
            raise ValueError(f"method: expected cash or card, not {method!r}")
        reply: Future[dict[str, Any]] = Future()
        self._bus.post(PayRequested(method, reply))
        return reply.result(timeout=REPLY_SECONDS)

    def _pay(self, event: PayRequested) -> None:
        total = self._checkout.totals().total
        if self._checkout.cart.is_empty:
            event.reply.set_exception(DomainError("the cart is empty: scan something first"))
            return
        if event.method == "cash":
            self._commit(event.reply, [Tender("cash", total)])
            return
        if self._terminal is None:
            event.reply.set_exception(DomainError("no payment terminal is configured"))
            return
        self._attempts += 1
        request = PaymentRequest(
            total, self._checkout.cart.currency, f"sim-{self._attempts}-{total}"
        )
        terminal = self._terminal

        def ask() -> None:  # the customer's time at the terminal never blocks the main loop
            try:
                result = terminal.pay(request)
            except Exception as err:
                event.reply.set_exception(err)
                return
            self._bus.post(TerminalAnswered(result, total, event.reply))

        threading.Thread(target=ask, name="sim-card-payment", daemon=True).start()

    def _answered(self, event: TerminalAnswered) -> None:
        result = event.result
        if result.outcome != "approved":
            # "unknown" is never taken as paid: the cart stays, nothing is charged twice.
            event.reply.set_exception(TenderError(f"card payment {result.outcome}"))
            return
        tender = Tender(
            "card",
            event.amount,
            reference=result.terminal_reference,
            card_mask=result.masked_card,
        )
        self._commit(event.reply, [tender])

    def _commit(self, reply: Future[dict[str, Any]], tenders: list[Tender]) -> None:
        try:
            sale = self._checkout.pay(tenders)
        except DomainError as err:
            reply.set_exception(err)
            return
        log.info("sim pay: %s committed, total %d", sale.receipt_number, sale.total)
        reply.set_result({"receipt": sale.receipt_number, "total": sale.total})
