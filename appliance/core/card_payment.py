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


@dataclass(frozen=True, slots=True)
class CardAvailability(Event):
    """Whether card may be offered now and, when not, why in plain words (for everyone)."""

    offered: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CardRecovered(Event):
    """Recovery resolved (or could not resolve) a card attempt left open."""

    reference: str
    resolution: str  # completed, reversed, not_charged, needs_staff
    detail: str
    receipt_number: str = ""  # the sale recovery completed, if it did
    sale_id: str = ""


class AttemptJournal(Protocol):
    """Durable record of card attempts (the store's PaymentAttempts); any thread, blocking."""

    def begin(self, request: PaymentRequest, cart: Cart | None) -> None:
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
    if journal is not None:
        try:
            journal.begin(request, cart)
        except ApplianceError as err:
            # Not recorded, not asked: a charge nobody could find again is worse than none.
            log.error("card payment %s not started: %s", request.merchant_reference, err)
            bus.post(CardAnswered(request, None, f"the attempt could not be recorded: {err}"))
            return
    recorded: list[PaymentResult] = []

    def record(answer: PaymentResult) -> None:
        # Before the terminal hears its answer was received: a crash after this finds it.
        if journal is not None:
            journal.answered(request, answer)
        recorded.append(answer)

    result: PaymentResult | None
    problem = ""
    try:
        result = terminal.pay(request, timeout=timeout, record=record)
    except DeviceError as err:
        # The port answers "unknown" when it may have charged: an error means it never
        # started (not open, busy, a request it refuses).
        result, problem = None, str(err)
    except Exception:
        log.exception("card payment %s failed", request.merchant_reference)
        result = PaymentResult("unknown", request.merchant_reference, message="error")
    if journal is not None and not recorded:
        try:
            journal.answered(request, result)
        except ApplianceError as err:
            # The row stays pending, so recovery asks the terminal what happened.
            log.error("card payment %s answer not recorded: %s", request.merchant_reference, err)
    bus.post(CardAnswered(request, result, problem))


def card_tender(request: PaymentRequest, result: PaymentResult | None) -> Tender:
    """The tender of a paid attempt: approved, or settled as paid by staff."""
    # Our own reference, unique per attempt: the journal finds the attempt by it in the
    # sale's commit. A terminal's receipt number starts again at every End-of-Day.
    return Tender(
        "card",
        request.amount,
        reference=request.merchant_reference,
        card_mask=receipt_mask(result.masked_card) if result is not None else "",
    )


def receipt_mask(masked_card: str) -> str:
    """The card as a receipt shows it: its last 4 digits only ("**** 1234"), or ""."""
    digits = "".join(ch for ch in masked_card if ch.isdigit())
    return f"**** {digits[-4:]}" if len(digits) >= 4 else ""
