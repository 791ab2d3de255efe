"""Money back to a card through the terminal: a reversal the same day, a refund after.

A reversal (ZVT 06 30) undoes the original payment by its receipt number: only the whole
amount, and only before the terminal's End-of-Day. Anything else, or a reversal the
terminal refuses, is a refund (06 31) that the customer's card must be presented for.
Each is an attempt of the payment journal, pending before the terminal hears of it, and
settled by the refund or void document that records it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from appliance.core.card_payment import card_request, receipt_mask
from appliance.core.events import Event, EventBus
from appliance.core.payment import PaymentRequest, PaymentResult, PaymentTerminal
from appliance.core.tender import Tender
from appliance.errors import ApplianceError, DeviceError

log = logging.getLogger(__name__)

REFUND_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class OriginalPayment:
    """What the journal knows of the payment being paid back."""

    reference: str
    amount: int
    receipt_number: str
    paid_on: date


@dataclass(frozen=True, slots=True)
class CardRefunded(Event):
    """The terminal answered a refund or reversal; posted by the worker thread."""

    request: PaymentRequest
    result: PaymentResult | None  # None: nothing was sent (the problem says why)
    problem: str = ""

    def tender(self) -> Tender:
        """The refund document's card tender (negative: money out); it settles the attempt."""
        mask = receipt_mask(self.result.masked_card) if self.result is not None else ""
        return Tender(
            "card", -self.request.amount, reference=self.request.merchant_reference, card_mask=mask
        )


class RefundJournal(Protocol):
    """The payment journal's side of a refund (the store's PaymentAttempts); blocking."""

    def begin(
        self,
        request: PaymentRequest,
        cart: None,
        *,
        kind: Literal["payment", "refund", "reversal"] = ...,
        original: str = ...,
    ) -> None:
        """Commit a pending refund attempt before the terminal hears of it."""
        ...

    def begin_reversal(
        self, request: PaymentRequest, original: str, found: PaymentResult | None = None
    ) -> None:
        """Commit a pending reversal before the terminal hears of it."""
        ...

    def answered(self, request: PaymentRequest, result: PaymentResult | None) -> None:
        """Commit the terminal's answer."""
        ...


class CardPayBack:
    """Pays money back to a card for one till; `run` blocks: call it on a worker thread."""

    def __init__(
        self,
        terminal: PaymentTerminal,
        journal: RefundJournal,
        bus: EventBus,
        *,
        device_id: str,
        timeout: float = REFUND_TIMEOUT_SECONDS,
    ) -> None:
        self._terminal = terminal
        self._journal = journal
        self._bus = bus
        self._device_id = device_id
        self._timeout = timeout

    def run(
        self, original: OriginalPayment | None, amount: int, currency: str, today: date
    ) -> None:
        """Reverse the whole of today's payment, else refund; posts CardRefunded, never raises."""
        if (
            original is not None
            and original.receipt_number
            and original.paid_on == today
            and amount == original.amount
        ):
            event = self._attempt(original, amount, currency, reverse=True)
            if event.result is not None and event.result.outcome == "approved":
                self._bus.post(event)
                return
            log.info("reversal of %s not done; a refund instead", original.reference)
        self._bus.post(self._attempt(original, amount, currency, reverse=False))

    def _attempt(
        self, original: OriginalPayment | None, amount: int, currency: str, *, reverse: bool
    ) -> CardRefunded:
        request = card_request(amount, currency, self._device_id)
        recorded: list[PaymentResult] = []

        def record(answer: PaymentResult) -> None:
            # Before the terminal hears its answer was received, as for a payment.
            self._journal.answered(request, answer)
            recorded.append(answer)

        try:
            if reverse and original is not None:
                self._journal.begin_reversal(request, original.reference)
                result = self._terminal.reverse(
                    original.receipt_number, request, self._timeout, record
                )
            else:
                paid_back = original.reference if original is not None else ""
                self._journal.begin(request, None, kind="refund", original=paid_back)
                result = self._terminal.refund(request, self._timeout, record)
        except DeviceError as err:
            self._answer(request, None)
            return CardRefunded(request, None, str(err))
        except ApplianceError as err:  # not journalled: nothing was sent
            return CardRefunded(request, None, str(err))
        if not recorded:
            self._answer(request, result)
        return CardRefunded(request, result)

    def _answer(self, request: PaymentRequest, result: PaymentResult | None) -> None:
        try:
            self._journal.answered(request, result)
        except ApplianceError as err:  # pending: recovery asks the terminal
            log.error("card refund %s answer not recorded: %s", request.merchant_reference, err)
