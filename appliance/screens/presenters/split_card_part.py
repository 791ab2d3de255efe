"""A card part of a split sale: asked of the terminal, kept once approved, or undone there.

The staff cash screen (card plus cash) and the kiosk's payment screen (card plus stored
value) share it. The rule it keeps: an approved part is never lost. It stays approved in
the payment journal until the sale that carries its tender commits (the journal settles it
in that sale's transaction), or until the terminal reverses it. A restart's card recovery
reverses a part whose sale never committed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from appliance.core.card_payment import (
    PAY_TIMEOUT_SECONDS,
    CardAnswered,
    CardAvailability,
    ask_terminal,
    card_request,
    card_tender,
)
from appliance.core.cart import Cart
from appliance.core.events import Event
from appliance.core.payment import PaymentRequest, PaymentResult, PaymentTerminal
from appliance.core.tender import Tender
from appliance.errors import ApplianceError
from appliance.screens.customer.background import run_in_background
from appliance.screens.presenters.context import ScreenContext

log = logging.getLogger(__name__)

NO_GATE = CardAvailability(False, "the card terminal is not available")

# Main thread: what the terminal answered (None: it refused before charging), and why not.
Answered = Callable[[PaymentResult | None, str], None]
# Main thread: whether the terminal undid the part, and why not.
Undone = Callable[[bool, str], None]


@dataclass(frozen=True, slots=True)
class CardPartUndone(Event):
    """The terminal answered the reversal of a card part, or it could not be asked."""

    reference: str  # the part's own merchant reference
    undone: bool
    problem: str = ""


class CardPart:
    """At most one card part of the sale in progress; main thread, the terminal off it."""

    def __init__(self, ctx: ScreenContext, answered: Answered, undone: Undone) -> None:
        self._ctx = ctx
        self._answered_cb = answered
        self._undone_cb = undone
        self._request: PaymentRequest | None = None  # with the terminal, or approved
        self._result: PaymentResult | None = None  # its approval, kept until a sale carries it
        self.asking = False
        self.undoing = False
        ctx.bus.subscribe(CardAnswered, self._answered)
        ctx.bus.subscribe(CardPartUndone, self._undone)

    # -- what it holds -----------------------------------------------------------------

    @property
    def held(self) -> bool:
        """An approved part no committed sale carries yet."""
        return self._result is not None

    @property
    def busy(self) -> bool:
        """With the terminal, or approved and not yet in a sale: the cart must not change."""
        return self.asking or self.undoing or self.held

    @property
    def amount(self) -> int:
        """The approved part's amount; 0 when none is held."""
        return self._request.amount if self._request is not None and self.held else 0

    @property
    def tender(self) -> Tender | None:
        """The approved part as the sale's tender (its reference settles the attempt)."""
        if self._request is None or self._result is None:
            return None
        return card_tender(self._request, self._result)

    def owns(self, request: PaymentRequest) -> bool:
        """True for the request of this part: other screens leave its answer alone."""
        return request is self._request

    def availability(self) -> CardAvailability:
        """Whether card is offered now, and why not; the gate never waits."""
        gate = self._ctx.services.app.card_gate
        return gate.availability if gate is not None else NO_GATE

    # -- intents -----------------------------------------------------------------------

    def ask(self, amount: int, cart: Cart) -> bool:
        """Send `amount` to the terminal as its own attempt; False when none may start."""
        terminal = self._terminal()
        if self.busy or amount <= 0 or terminal is None or not self.availability().offered:
            return False
        request = card_request(amount, cart.currency, self._ctx.settings.device.id)
        self._request, self._result, self.asking = request, None, True
        log.info("card part %s of %d started", request.merchant_reference, amount)
        bus, journal = self._ctx.bus, self._ctx.stores.payments
        # Journalled on the worker before the terminal hears of it, as every card attempt is.
        run_in_background(
            "card-part",
            lambda: ask_terminal(terminal, request, bus, journal=journal, cart=cart),
        )
        return True

    def cancel(self) -> None:
        """Ask the terminal to stop the part it has; its answer says whether it did."""
        terminal = self._ctx.services.devices.terminal
        if self.asking and terminal is not None:
            terminal.cancel()

    def undo(self) -> bool:
        """Reverse the approved part at the terminal (off the main thread); False if none."""
        request, result, terminal = self._request, self._result, self._terminal()
        if request is None or result is None or self.undoing or terminal is None:
            return False
        self.undoing = True
        bus, journal = self._ctx.bus, self._ctx.stores.payments

        def reverse() -> None:
            undone, problem = reverse_part(terminal, journal, request, result)
            bus.post(CardPartUndone(request.merchant_reference, undone, problem))

        run_in_background("card-part-undo", reverse)
        return True

    def forget(self) -> None:
        """A committed sale carries the part now (or it was never approved)."""
        self._request = self._result = None
        self.asking = self.undoing = False

    # -- answers (main thread) ---------------------------------------------------------

    def _answered(self, event: CardAnswered) -> None:
        if not self.owns(event.request) or not self.asking:
            return
        self.asking = False
        result = event.result
        if result is not None and result.outcome == "approved":
            self._result = result
            log.info("card part %s approved", event.request.merchant_reference)
        else:
            self._request = None
            if result is not None and result.outcome == "unknown":
                # In doubt, it stays pending: recovery asks the terminal and reverses a charge
                # it finds (nothing else is held, so no approved part is reversed with it).
                gate = self._ctx.services.app.card_gate
                if gate is not None:
                    gate.recover(event.request.merchant_reference)
        self._answered_cb(result, event.problem)

    def _undone(self, event: CardPartUndone) -> None:
        request = self._request
        if request is None or event.reference != request.merchant_reference:
            return
        self.undoing = False
        if event.undone:
            self.forget()
        self._undone_cb(event.undone, event.problem)

    def _terminal(self) -> PaymentTerminal | None:
        terminal = self._ctx.services.devices.terminal
        if terminal is None or terminal.health.state != "ok":
            return None
        return terminal


class ReversalJournal(Protocol):
    """The journal calls a reversal needs (the store's PaymentAttempts); any thread, blocking."""

    def begin_reversal(self, request: PaymentRequest, original: str) -> None:
        """Journal a pending reversal of `original`; StoreError if it cannot."""
        ...

    def answered(self, request: PaymentRequest, result: PaymentResult | None) -> None:
        """Journal the terminal's answer."""
        ...

    def close(self, reference: str) -> None:
        """An approved reversal is final."""
        ...

    def reversed(self, reference: str, message: str) -> None:
        """The original payment is final as reversed."""
        ...


def reverse_part(
    terminal: PaymentTerminal,
    journal: ReversalJournal,
    request: PaymentRequest,
    result: PaymentResult,
) -> tuple[bool, str]:
    """On a worker thread: reverse an approved part; (undone, why not). Never raises."""
    original = request.merchant_reference
    if not result.receipt_number:
        return False, "the terminal gave no receipt number to reverse it by"
    # A reference of its own, short as terminals want it, that still names the original.
    reversal = PaymentRequest(
        request.amount, request.currency, f"{original[:24]}-R{uuid.uuid4().hex[:6]}"
    )
    recorded: list[PaymentResult] = []

    def record(answer: PaymentResult) -> None:
        journal.answered(reversal, answer)  # before the terminal hears it was received
        recorded.append(answer)

    try:
        # Journalled first: a reversal the process does not live to see answered is found.
        journal.begin_reversal(reversal, original)
        answer = terminal.reverse(
            result.receipt_number, reversal, timeout=PAY_TIMEOUT_SECONDS, record=record
        )
        if not recorded:
            journal.answered(reversal, answer)
        if answer.outcome != "approved":
            log.warning("card part %s not reversed: %s", original, answer.outcome)
            return False, answer.message or answer.outcome
        journal.close(reversal.merchant_reference)
        journal.reversed(original, "undone at the till: the sale was not completed")
    except ApplianceError as err:
        log.error("card part %s not reversed: %s", original, err)
        return False, str(err)
    except Exception as err:  # a bug must not leave the screen undoing for ever
        log.exception("card part %s reversal failed", original)
        return False, str(err)
    log.warning("card part %s reversed at the terminal", original)
    return True, ""
