"""SimTerminal: a scripted integrated card terminal, for demos, tests and `--simulate`.

It answers like a real terminal would, including the hard cases: a decline, a customer
who cancels, and a terminal that never answers (the till must then record "unknown",
never guess). It only ever hands out a masked card number.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from appliance.core.money import is_known_currency
from appliance.core.payment import AnswerRecorder, PaymentRequest, PaymentResult, TerminalTotals
from appliance.device_settings import SimTerminalSettings
from appliance.drivers.base import DeviceBase
from appliance.errors import DeviceError

log = logging.getLogger(__name__)

ScriptedOutcome = Literal["approve", "decline", "cancel", "timeout"]
SCRIPTED_OUTCOMES: tuple[ScriptedOutcome, ...] = get_args(ScriptedOutcome)
_UNSCRIPTED = "the scripted terminal only pays; use the ZVT emulator (kind zvt_terminal)"
MASKED_CARD = "**** 4242"  # the simulator's only card; a real PAN never exists here


class SimTerminal(DeviceBase):
    """A payment terminal that answers from a script of outcomes, cycling through it.

    Thread-safe: `pay` blocks its caller (call it off the main thread), `cancel` and
    `script` may be called from any thread while a payment runs.
    """

    kind = "payment_terminal"

    def __init__(
        self,
        name: str,
        outcomes: Sequence[str] = ("approve",),
        delay_seconds: float = 0.5,
    ) -> None:
        super().__init__(name, address="simulated")
        self._delay = delay_seconds
        self._script_lock = threading.Lock()
        self._outcomes: tuple[ScriptedOutcome, ...] = _checked(outcomes)
        self._next = 0
        self._busy = False
        self._cancelled = threading.Event()

    @classmethod
    def from_settings(
        cls, name: str, settings: SimTerminalSettings, built: Mapping[str, DeviceBase]
    ) -> SimTerminal:
        """A simulator with the configured script and customer delay."""
        return cls(name, settings.outcomes, settings.delay_seconds)

    @property
    def outcomes(self) -> tuple[ScriptedOutcome, ...]:
        """The script the next payments follow."""
        with self._script_lock:
            return self._outcomes

    def script(self, outcomes: Sequence[str]) -> None:
        """Replace the script; the next payment takes its first outcome."""
        checked = _checked(outcomes)
        with self._script_lock:
            self._outcomes = checked
            self._next = 0
        log.info("terminal %s: scripted %s", self.name, ", ".join(checked))

    def pay(
        self, request: PaymentRequest, timeout: float = 120.0, record: AnswerRecorder | None = None
    ) -> PaymentResult:
        """Run one payment; blocks up to the customer delay or `timeout`, whichever is less."""
        _validate(request)
        with self._script_lock:
            if not self._opened:
                raise DeviceError(f"terminal {self.name} is not open")
            if self._busy:
                raise DeviceError(f"terminal {self.name} is busy with another payment")
            self._busy = True
            outcome = self._outcomes[self._next % len(self._outcomes)]
            self._next += 1
            self._cancelled.clear()
        try:
            result = self._answer(request, outcome, timeout)
        finally:
            with self._script_lock:
                self._busy = False
        log.info(
            "terminal %s: payment of %d %s for %s: %s",
            self.name,
            request.amount,
            request.currency,
            request.merchant_reference,
            result.outcome,
        )
        if record is not None and result.outcome in ("approved", "declined"):
            record(result)  # as a real terminal does before it is acknowledged
        return result

    def refund(self, *_args: object, **_kwargs: object) -> PaymentResult:
        """Not scripted: a card refund needs the ZVT emulator."""
        raise DeviceError(_UNSCRIPTED)

    def reverse(self, *_args: object, **_kwargs: object) -> PaymentResult:
        """Not scripted: a reversal needs the ZVT emulator."""
        raise DeviceError(_UNSCRIPTED)

    def last_transaction(self, timeout: float = 30.0) -> PaymentResult | None:
        """Not scripted: recovery needs the ZVT emulator."""
        raise DeviceError(_UNSCRIPTED)

    def end_of_day(self, timeout: float = 120.0) -> TerminalTotals:
        """Not scripted: End-of-Day needs the ZVT emulator."""
        raise DeviceError(_UNSCRIPTED)

    def check(self, timeout: float = 10.0) -> str:
        """Always well: a script has no link to lose."""
        return "scripted terminal"

    def cancel(self) -> None:
        """Abort the running payment (the customer pressed cancel); no-op when idle."""
        with self._script_lock:
            if self._busy:
                self._cancelled.set()

    def _answer(
        self, request: PaymentRequest, outcome: ScriptedOutcome, timeout: float
    ) -> PaymentResult:
        reference = request.merchant_reference
        if outcome == "timeout":
            # The terminal went silent: wait out the caller's timeout. A cancel cannot be
            # confirmed by a silent terminal either, so both end as "unknown".
            self._cancelled.wait(timeout)
            return PaymentResult("unknown", reference, message="no answer from the terminal")
        if self._cancelled.wait(min(self._delay, timeout)):
            return PaymentResult("cancelled", reference, message="cancelled at the till")
        if self._delay > timeout:
            return PaymentResult("unknown", reference, message="no answer from the terminal")
        if outcome == "cancel":
            return PaymentResult("cancelled", reference, message="cancelled by the customer")
        terminal_reference = f"SIM-{uuid.uuid4().hex[:12].upper()}"
        if outcome == "decline":
            return PaymentResult(
                "declined",
                reference,
                terminal_reference=terminal_reference,
                masked_card=MASKED_CARD,
                message="declined by the card issuer",
            )
        return PaymentResult(
            "approved", reference, terminal_reference=terminal_reference, masked_card=MASKED_CARD
        )

    def _start(self) -> None:
        self._set_health("ok", "simulated terminal")

    def _stop(self) -> None:
        self.cancel()


def _checked(outcomes: Sequence[str]) -> tuple[ScriptedOutcome, ...]:
    """The outcomes as a script; DeviceError names an unknown one."""
    if isinstance(outcomes, str):
        outcomes = (outcomes,)
    script: list[ScriptedOutcome] = []
    for outcome in outcomes:
        if outcome not in SCRIPTED_OUTCOMES:
            expected = ", ".join(SCRIPTED_OUTCOMES)
            raise DeviceError(f"unknown terminal outcome {outcome!r}; expected one of {expected}")
        script.append(outcome)
    if not script:
        raise DeviceError("a terminal script needs at least one outcome")
    return tuple(script)


def _validate(request: PaymentRequest) -> None:
    """Refuse a request no terminal would accept, before anything is charged."""
    if request.amount <= 0:
        raise DeviceError(f"payment amount must be positive, got {request.amount}")
    if not is_known_currency(request.currency):
        raise DeviceError(f"payment currency must be an ISO 4217 code, got {request.currency!r}")
    if not request.merchant_reference.strip():
        raise DeviceError("a payment needs a merchant reference")
