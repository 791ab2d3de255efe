"""Integrated card payments: the request a till sends and what a terminal answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from appliance.core.devices import Device

PaymentType = Literal["card", "contactless", "wallet"]
Outcome = Literal["approved", "declined", "cancelled", "unknown"]


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What to charge: amount in minor units of an ISO currency, and who asks."""

    amount: int
    currency: str
    merchant_reference: str  # unique per attempt; the sale id plus an attempt number
    allowed: tuple[PaymentType, ...] = ("card", "contactless", "wallet")
    application_id: str = "appliance"
    api_version: str = "1"

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("a payment must be for a positive amount")


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The terminal's answer; card data only masked, never a full card number."""

    outcome: Outcome
    merchant_reference: str
    terminal_reference: str = ""
    masked_card: str = ""  # e.g. "**** 1234"
    message: str = ""

    def __post_init__(self) -> None:
        if sum(ch.isdigit() for ch in self.masked_card) > 4:
            raise ValueError("a payment result may carry only the last 4 card digits")


class PaymentTerminal(Device, Protocol):
    """Takes card payments. `pay` blocks for the customer: call off the main thread."""

    def pay(self, request: PaymentRequest, timeout: float = 120.0) -> PaymentResult:
        """Run one payment; "unknown" when the outcome cannot be known (never assume)."""
        ...

    def cancel(self) -> None:
        """Ask the terminal to abort the running payment; thread-safe."""
        ...
