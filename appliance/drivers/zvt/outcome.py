"""What a ZVT exchange means for the till: a PaymentResult or TerminalTotals, never a guess.

PA00P015: an approval is a Status-Information with result 00, then Completion `06 0F`; a
decline is a non-zero result, then Abort `06 1E <code>`; `6C` is a cancel. If the exchange
broke off after the ECR acknowledged the Status-Information, the PT keeps that result; if it
broke off before, the PT may have charged and may also reverse it itself: "unknown".
"""

from __future__ import annotations

from appliance.core.payment import Outcome, PaymentResult, TerminalTotals
from appliance.drivers.zvt.messages import StatusInformation
from appliance.drivers.zvt.result_codes import (
    ABORTED,
    MSG_UNKNOWN,
    SUCCESS,
    message_for,
)
from appliance.drivers.zvt.session import Exchange
from appliance.errors import DeviceError


def payment_result(
    status: StatusInformation | None,
    reference: str,
    outcome: Outcome,
    *,
    code: int | None = None,
    lines: tuple[str, ...] = (),
    message: str = "",
) -> PaymentResult:
    """A PaymentResult carrying the PCI-safe fields of `status` (the PAN is already masked)."""
    if status is None:
        status = StatusInformation()
    if code is None:
        code = status.result_code
    return PaymentResult(
        outcome,
        reference,
        terminal_reference=receipt_text(status.receipt_number),
        masked_card=status.masked_pan,
        message=message or (MSG_UNKNOWN if outcome == "unknown" else message_for(code)),
        card_brand=status.card_name,
        auth_code=status.auth_code,
        terminal_id=status.terminal_id,
        trace_number="" if status.trace_number is None else f"{status.trace_number:06d}",
        receipt_number=receipt_text(status.receipt_number),
        result_code=code,
        amount=status.amount,
        offline=status.offline,
        receipt_lines=lines,
        reverses_trace=("" if status.original_trace is None else f"{status.original_trace:06d}"),
    )


def recorded(status: StatusInformation, reference: str) -> PaymentResult:
    """The answer the journal writes before the ECR acknowledges it (its receipt comes later)."""
    return payment_result(status, reference, outcome_of(status.result_code))


def transaction_result(exchange: Exchange, reference: str) -> PaymentResult:
    """The outcome of an Authorization, Refund or Reversal exchange."""
    status, lines = exchange.status, exchange.receipt_lines
    if exchange.lost:
        if status is None:
            # No answer came: the PT may have charged, or reversed it itself.
            return payment_result(None, reference, "unknown", lines=lines)
        recorded_outcome = outcome_of(status.result_code)
        if recorded_outcome == "approved":
            # Acknowledged, but the Completion never came: whether our ack arrived cannot be
            # known, and a PT that did not get it reverses the payment itself (PA00P015
            # 2.2.6). Recovery asks the terminal which it was; the fields stay for it.
            return payment_result(status, reference, "unknown", lines=lines)
        return payment_result(status, reference, recorded_outcome, lines=lines)
    if exchange.abort_code is not None:
        code = exchange.abort_code
        if status is not None and status.result_code not in (None, SUCCESS):
            code = status.result_code  # the Status-Information's own code says more
        outcome: Outcome = "cancelled" if code == ABORTED else "declined"
        return payment_result(status, reference, outcome, code=code, lines=lines)
    if status is None:
        # Completion without a Status-Information: done, but with nothing to show for it.
        return payment_result(None, reference, "approved", code=SUCCESS, lines=lines)
    # Completion: a Status-Information without a result code still ended in success.
    code = SUCCESS if status.result_code is None else status.result_code
    return payment_result(status, reference, outcome_of(code), code=code, lines=lines)


def totals_result(exchange: Exchange) -> TerminalTotals:
    """What an End-of-Day closed; DeviceError when it did not close."""
    status = exchange.status
    if exchange.lost:
        raise DeviceError(f"end of day not confirmed: {exchange.lost}")
    if exchange.abort_code is not None:
        code = exchange.abort_code
        raise DeviceError(f"end of day refused: {message_for(code)} (code {code:02X})")
    if status is None:
        return TerminalTotals(0, 0, "end of day done, no totals reported")
    # BMP 60 counts the payments per card group; a terminal that leaves it out gives its
    # total only, and the count stays 0 rather than a guess.
    count = status.totals.count if status.totals is not None else 0
    amount = status.amount or 0
    return TerminalTotals(count, amount, status.additional_text)


def receipt_text(number: int | None) -> str:
    """A receipt number as the till stores and shows it (4 digits), "" when none."""
    return "" if number is None else f"{number:04d}"


def outcome_of(code: int | None) -> Outcome:
    """What a Status-Information's result code means: 00 approved, 6C cancelled, else declined."""
    if code is None:
        return "unknown"  # a result without its code says nothing
    if code == SUCCESS:
        return "approved"
    return "cancelled" if code == ABORTED else "declined"
