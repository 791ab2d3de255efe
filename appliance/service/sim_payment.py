"""`appliance sim pay|settle`: the control socket's way to the till's intents.

The control socket answers each connection on its own thread; the cart belongs to the main
loop. So a request is posted to the bus with a Future, the main loop runs it as an intent,
and the socket thread waits for the outcome. A payment waiting for a slow terminal blocks
only its own connection. Headless, the HeadlessTill runs the intent; with a checkout screen,
the screen does (`serve`), so it decides as it would for a customer pressing Pay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, cast

from appliance.core.card_payment import PAY_TIMEOUT_SECONDS, SETTLEMENTS, Settlement
from appliance.core.events import Event, EventBus
from appliance.core.sale import Sale
from appliance.drivers.sim.control import Answer, Command, Request
from appliance.errors import ApplianceError, DomainError
from appliance.service.card_gate import CardGate
from appliance.service.headless_till import HeadlessTill

log = logging.getLogger(__name__)

# The terminal has PAY_TIMEOUT_SECONDS to answer; the main loop needs a moment after that.
REPLY_SECONDS = PAY_TIMEOUT_SECONDS + 30.0


class PaymentScreen(Protocol):
    """A checkout screen taking `sim pay`, `sim cancel-payment` and `sim settle` as intents.

    Called on the main thread. Each answers through `reply` once the screen has decided (a
    sale, None, or why it refused), and never blocks: a terminal's answer comes later.
    """

    def pay(self, method: str, reply: Future[Sale]) -> None:
        """Pay for the cart as the screen would: "card" or "cash"."""

    def cancel_payment(self, reply: Future[None]) -> None:
        """Ask the terminal to abort the screen's card payment."""

    def settle(self, settlement: Settlement, reference: str, reply: Future[Sale | None]) -> None:
        """Staff decide the screen's card payment in doubt."""


@dataclass(frozen=True, slots=True, eq=False)
class TillRequested(Event):
    """A `sim` command for the till or the screen: its intent runs on the main loop."""

    intent: Callable[[Future[Any]], None]  # answers through the Future
    reply: Future[Any]


class SimPayment:
    """Socket-thread side of `sim pay`, `sim settle` and `sim cancel-payment`."""

    def __init__(
        self, bus: EventBus, till: HeadlessTill, gate: Callable[[], CardGate | None]
    ) -> None:
        self._bus = bus
        self._till = till
        self._gate = gate
        self._screen: PaymentScreen | None = None
        bus.subscribe(TillRequested, self._run)

    def serve(self, screen: PaymentScreen | None) -> None:
        """From now on `screen` takes pay, cancel and settle (None: the till again); main thread."""
        self._screen = screen

    def commands(self) -> dict[str, Command]:
        """The control commands this adds."""
        return {
            "pay": Command(
                "pay for the cart: cash|card (card goes through the terminal)", self.pay
            ),
            "settle": Command(
                "settle a card payment in doubt: paid|not-paid [reference]", self.settle
            ),
            "cancel-payment": Command(
                "the till asks the terminal to abort the card payment in progress", self.cancel
            ),
            "end-of-day": Command(
                "close the card terminal's day (refused while a card payment is unresolved)",
                self.end_of_day,
            ),
        }

    def end_of_day(self, _request: Request) -> Answer:
        """Close the terminal's day; blocks the calling (socket) thread, never the main loop."""
        gate = self._gate()
        if gate is None:
            raise DomainError("no card terminal here")
        totals = gate.end_of_day()
        return {"count": totals.count, "amount": totals.amount}

    def pay(self, request: Request) -> Answer:
        """Ask the main loop to pay; blocks the calling (socket) thread for the answer."""
        method = request.get("method", "cash")
        if method not in ("cash", "card"):
            raise ValueError(f"method: expected cash or card, not {method!r}")

        def pay(reply: Future[Sale]) -> None:
            if self._screen is not None:
                self._screen.pay(method, reply)
            elif method == "cash":
                reply.set_result(self._till.pay_cash())
            else:
                self._till.pay_card(reply)

        sale: Sale = self._ask(pay)
        return {"receipt": sale.receipt_number, "total": sale.total}

    def settle(self, request: Request) -> Answer:
        """Ask the main loop to settle a payment in doubt; blocks for the outcome."""
        settlement = request.get("settlement")
        if settlement not in SETTLEMENTS:
            raise ValueError(f"settlement: expected paid or not-paid, not {settlement!r}")
        reference = request.get("reference") or ""
        if not isinstance(reference, str):
            raise ValueError("reference: expected a string")
        decided = cast(Settlement, settlement)

        def settle(reply: Future[Sale | None]) -> None:
            if self._screen is not None:
                self._screen.settle(decided, reference, reply)
            else:
                reply.set_result(self._till.settle(decided, reference))

        sale: Sale | None = self._ask(settle)
        answer: dict[str, Any] = {"settled": settlement}
        if sale is not None:
            answer |= {"receipt": sale.receipt_number, "total": sale.total}
        return answer

    def cancel(self, _request: Request) -> Answer:
        """Ask the terminal to abort; the payment's own caller hears how it ended."""

        def cancel(reply: Future[None]) -> None:
            if self._screen is not None:
                self._screen.cancel_payment(reply)
            else:
                self._till.cancel_card()
                reply.set_result(None)

        self._ask(cancel)
        return {}

    def _ask(self, intent: Callable[[Future[Any]], None]) -> Any:
        reply: Future[Any] = Future()
        self._bus.post(TillRequested(intent, reply))
        return reply.result(timeout=REPLY_SECONDS)

    def _run(self, event: TillRequested) -> None:
        try:
            event.intent(event.reply)
        except Exception as err:  # the caller waits on the reply: it always gets one
            if not isinstance(err, ApplianceError):
                log.exception("sim request failed")
            if not event.reply.done():
                event.reply.set_exception(err)
