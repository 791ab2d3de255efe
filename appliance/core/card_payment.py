"""Card payments at a till: the rules the kiosk screen and the headless till share.

One attempt is asked of the terminal off the main thread; its answer comes back on the bus
as CardAnswered. An "unknown" answer is never taken as paid or as not paid: a member of
staff settles it (`Settlement`), and only "paid" turns the cart into a sale, with the
attempt's own reference, so one charge never becomes two sales.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Literal, Protocol

from appliance.core.cart import Cart
from appliance.core.events import Event, EventBus
from appliance.core.payment import PaymentRequest, PaymentResult, PaymentTerminal
from appliance.core.tender import Tender
from appliance.errors import ApplianceError, DeviceError

log = logging.getLogger(__name__)

# How long the customer has at the terminal before the answer counts as "unknown".
PAY_TIMEOUT_SECONDS = 120.0

Settlement = Literal["paid", "not-paid"]
SETTLEMENTS: tuple[Settlement, ...] = ("paid", "not-paid")


@dataclass(frozen=True, slots=True)
class CardAnswered(Event):
    """The terminal answered (or could not start) a payment; posted by the worker thread."""

    request: PaymentRequest
    result: PaymentResult | None  # None: the terminal refused before charging anything
    problem: str = ""


class AttemptJournal(Protocol):
    """Durable record of card attempts (the store's PaymentAttempts); any thread, blocking."""

    def begin(self, request: PaymentRequest, cart: Cart) -> None:
        """Record an attempt before the terminal hears of it; raises StoreError if it cannot."""
        ...

    def answered(self, request: PaymentRequest, result: PaymentResult | None) -> None:
        """Record the terminal's answer (None: it refused before charging anything)."""
        ...


def card_request(amount: int, currency: str, device_id: str) -> PaymentRequest:
    """A request for one attempt, with a reference of its own."""
    # Unique per attempt (a terminal treats a repeated reference as the same payment),
    # and short: terminals limit its length.
    return PaymentRequest(amount, currency, f"{device_id}-{uuid.uuid4().hex[:16]}")


def ask_terminal(
    terminal: PaymentTerminal,
    request: PaymentRequest,
    bus: EventBus,
    *,
    journal: AttemptJournal | None = None,
    cart: Cart | None = None,
    timeout: float = PAY_TIMEOUT_SECONDS,
) -> None:
    """Run one attempt on the calling (worker) thread and post its CardAnswered; never raises.

    With a journal, the attempt is durable before the terminal hears of it: a payment the
    process does not live to see answered is found at the next start, in doubt.
    """
    if journal is not None and cart is not None:
        try:
            journal.begin(request, cart)
        except ApplianceError as err:
            # Not recorded, not asked: a charge nobody could find again is worse than none.
            log.error("card payment %s not started: %s", request.merchant_reference, err)
            bus.post(CardAnswered(request, None, f"the attempt could not be recorded: {err}"))
            return
    result: PaymentResult | None
    problem = ""
    try:
        result = terminal.pay(request, timeout=timeout)
    except DeviceError as err:
        # The port answers "unknown" when it may have charged: an error means it never
        # started (not open, busy, a request it refuses).
        result, problem = None, str(err)
    except Exception:
        log.exception("card payment %s failed", request.merchant_reference)
        result = PaymentResult("unknown", request.merchant_reference, message="error")
    if journal is not None and cart is not None:
        try:
            journal.answered(request, result)
        except ApplianceError as err:
            # The row stays open, so the next start reports the attempt in doubt.
            log.error("card payment %s answer not recorded: %s", request.merchant_reference, err)
    bus.post(CardAnswered(request, result, problem))


def card_tender(request: PaymentRequest, result: PaymentResult | None) -> Tender:
    """The tender of a paid attempt: approved, or settled as paid by staff."""
    reference = result.terminal_reference if result is not None else ""
    return Tender(
        "card",
        request.amount,
        # A payment in doubt may have no terminal reference: ours finds it in the terminal.
        reference=reference or request.merchant_reference,
        card_mask=result.masked_card if result is not None else "",
    )
