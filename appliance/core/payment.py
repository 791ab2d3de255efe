"""Integrated card payments: the request a till sends and what a terminal answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from appliance.core.devices import Device

PaymentType = Literal["card", "contactless", "wallet"]
Outcome = Literal["approved", "declined", "cancelled", "unknown"]
PAYMENT_TYPES: tuple[PaymentType, ...] = ("card", "contactless", "wallet")

# A masked card number keeps at most the first 6 and the last 4 digits (PCI DSS 3.4).
MAX_CARD_DIGITS = 10


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What to charge: amount in minor units of an ISO currency, and who asks."""

    amount: int
    currency: str
    merchant_reference: str  # unique per attempt; the sale id plus an attempt number
    allowed: tuple[PaymentType, ...] = PAYMENT_TYPES
    application_id: str = "appliance"
    api_version: str = "1"

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("a payment must be for a positive amount")
        if not self.allowed or any(kind not in PAYMENT_TYPES for kind in self.allowed):
            raise ValueError(f"allowed payment types: some of {', '.join(PAYMENT_TYPES)}")


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The terminal's answer, with only the card data PCI DSS lets a till keep.

    Never a full card number: `masked_card` holds at most the first 6 and last 4 digits.
    """

    outcome: Outcome
    merchant_reference: str
    terminal_reference: str = ""  # the terminal's own id of the payment (receipt number)
    masked_card: str = ""  # e.g. "672559******1234" or "**** 1234"
    message: str = ""  # for the customer, in plain words
    card_brand: str = ""  # e.g. "girocard", "Mastercard"
    auth_code: str = ""
    terminal_id: str = ""
    trace_number: str = ""
    receipt_number: str = ""  # reverses the payment the same day (ZVT 06 30)
    result_code: int | None = None  # the terminal's own code; 0 approved
    amount: int | None = None  # what the terminal says it charged, minor units
    offline: bool = False  # approved offline or deferred: the terminal uploads it later
    receipt_lines: tuple[str, ...] = ()  # the terminal's receipt, for paper or e-receipt
    reverses_trace: str = ""  # a reversal's: the trace number of the payment it undid

    def __post_init__(self) -> None:
        if sum(ch.isdigit() for ch in self.masked_card) > MAX_CARD_DIGITS:
            raise ValueError("a payment result may carry only the first 6 and last 4 digits")


# Called by a terminal with the answer it is about to acknowledge: the journal writes it
# first. If it raises, the answer is not acknowledged and the payment ends "unknown".
AnswerRecorder = Callable[[PaymentResult], None]


@dataclass(frozen=True, slots=True)
class TerminalTotals:
    """What an End-of-Day closed on the terminal: its count and amount."""

    count: int
    amount: int
    message: str = ""


class PaymentTerminal(Device, Protocol):
    """Takes card payments. Every call but `cancel` blocks: call off the main thread."""

    def pay(
        self, request: PaymentRequest, timeout: float = 120.0, record: AnswerRecorder | None = None
    ) -> PaymentResult:
        """Run one payment; "unknown" when the outcome cannot be known (never assume).

        DeviceError means nothing was sent (not open, busy, a request it cannot honour).
        """
        ...

    def cancel(self) -> None:
        """Ask the terminal to abort the running payment; thread-safe."""
        ...

    def refund(
        self, request: PaymentRequest, timeout: float = 120.0, record: AnswerRecorder | None = None
    ) -> PaymentResult:
        """Pay `request.amount` back to a card the customer presents."""
        ...

    def reverse(
        self,
        receipt_number: str,
        request: PaymentRequest,
        timeout: float = 120.0,
        record: AnswerRecorder | None = None,
    ) -> PaymentResult:
        """Undo today's payment with this receipt number; "approved" when it is undone."""
        ...

    def last_transaction(self, timeout: float = 30.0) -> PaymentResult | None:
        """What the terminal last did (Status Enquiry, then Repeat Receipt); None if nothing."""
        ...

    def end_of_day(self, timeout: float = 120.0) -> TerminalTotals:
        """Close the terminal's day and submit its payments."""
        ...

    def check(self, timeout: float = 10.0) -> str:
        """Ask the terminal how it is (no charge); its answer, or DeviceError."""
        ...
