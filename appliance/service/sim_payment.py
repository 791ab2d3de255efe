"""`appliance sim pay|settle`: the control socket's way to the headless till's intents.

The control socket answers each connection on its own thread; the cart belongs to the main
loop. So a request is posted to the bus with a Future, the main loop hands it to the
HeadlessTill (the kiosk's path), and the socket thread waits for the outcome. A payment
waiting for a slow terminal blocks only its own connection.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

from appliance.core.card_payment import PAY_TIMEOUT_SECONDS, SETTLEMENTS, Settlement
from appliance.core.events import Event, EventBus
from appliance.core.sale import Sale
from appliance.drivers.sim.control import Answer, Command, Request
from appliance.errors import ApplianceError
from appliance.service.headless_till import HeadlessTill

# The terminal has PAY_TIMEOUT_SECONDS to answer; the main loop needs a moment after that.
REPLY_SECONDS = PAY_TIMEOUT_SECONDS + 30.0


@dataclass(frozen=True, slots=True, eq=False)
class PayRequested(Event):
    """Someone asked the headless till to pay for its cart (cash or card)."""

    method: str
    reply: Future[Sale]


@dataclass(frozen=True, slots=True, eq=False)
class SettleRequested(Event):
    """Staff settle a card payment in doubt: paid or not paid."""

    settlement: Settlement
    reference: str
    reply: Future[Sale | None]


class SimPayment:
    """Socket-thread side of `sim pay` and `sim settle`; main-loop side is the till."""

    def __init__(self, bus: EventBus, till: HeadlessTill) -> None:
        self._bus = bus
        self._till = till
        bus.subscribe(PayRequested, self._pay)
        bus.subscribe(SettleRequested, self._settle)

    def commands(self) -> dict[str, Command]:
        """The control commands this adds."""
        return {
            "pay": Command(
                "pay for the cart: cash|card (card goes through the terminal)", self.pay
            ),
            "settle": Command(
                "settle a card payment in doubt: paid|not-paid [reference]", self.settle
            ),
        }

    def pay(self, request: Request) -> Answer:
        """Ask the main loop to pay; blocks the calling (socket) thread for the answer."""
        method = request.get("method", "cash")
        if method not in ("cash", "card"):
            raise ValueError(f"method: expected cash or card, not {method!r}")
        reply: Future[Sale] = Future()
        self._bus.post(PayRequested(str(method), reply))
        sale = reply.result(timeout=REPLY_SECONDS)
        return {"receipt": sale.receipt_number, "total": sale.total}

    def settle(self, request: Request) -> Answer:
        """Ask the main loop to settle a payment in doubt; blocks for the outcome."""
        settlement = request.get("settlement")
        if settlement not in SETTLEMENTS:
            raise ValueError(f"settlement: expected paid or not-paid, not {settlement!r}")
        reference = request.get("reference") or ""
        if not isinstance(reference, str):
            raise ValueError("reference: expected a string")
        reply: Future[Sale | None] = Future()
        self._bus.post(SettleRequested(cast(Settlement, settlement), reference, reply))
        sale = reply.result(timeout=REPLY_SECONDS)
        answer: dict[str, Any] = {"settled": settlement}
        if sale is not None:
            answer |= {"receipt": sale.receipt_number, "total": sale.total}
        return answer

    def _pay(self, event: PayRequested) -> None:
        if event.method == "card":
            self._till.pay_card(event.reply)
            return
        try:
            event.reply.set_result(self._till.pay_cash())
        except ApplianceError as err:
            event.reply.set_exception(err)

    def _settle(self, event: SettleRequested) -> None:
        try:
            event.reply.set_result(self._till.settle(event.settlement, event.reference))
        except ApplianceError as err:
            event.reply.set_exception(err)
