"""The help desk: opens and clears the kiosk's calls for help, and drives the attendant light.

It turns what the kiosk sees into calls (the core's HelpCalls): an age-restricted item in a
kiosk's cart, a card payment whose outcome is unknown, the receipt printer out of paper.
Every change is posted as HelpCallChanged, which the screens and the hub uplink follow.
Main thread only (the bus's handlers run there), except `active`, which any thread reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from appliance.core.card_payment import CardAnswered, CardRecovered
from appliance.core.checkout import CartChanged, Checkout
from appliance.core.clock import Clock, SystemClock
from appliance.core.devices import DeviceHealthChanged
from appliance.core.events import EventBus, SaleCommitted
from appliance.core.help_calls import (
    BY_KIOSK,
    AttendantLight,
    HelpCall,
    HelpCallChanged,
    HelpCalls,
    HelpReason,
)
from appliance.core.ids import new_document_id

log = logging.getLogger(__name__)

PAPER_OUT = "paper out"  # the printer adapter's health reason (drivers/escpos_printer.py)
BY_CUSTOMER = "customer"  # the customer took the restricted items off the cart
# A badge at the kiosk cannot settle a card payment in doubt: staff decide it on the payment
# screen (paid or not), or recovery does; the badge only answers that call.
DECIDED_ELSEWHERE: frozenset[HelpReason] = frozenset({"payment_in_doubt"})


class HelpDesk:
    """The kiosk's calls for help, opened from bus events and by the help button."""

    def __init__(
        self,
        checkout: Checkout,
        bus: EventBus,
        *,
        kiosk: bool,
        clock: Clock | None = None,
        new_id: Callable[[], str] = new_document_id,
    ) -> None:
        self._checkout = checkout
        self._bus = bus
        self._kiosk = kiosk  # a staffed till checks ages itself: no call for that
        self._calls = HelpCalls((clock or SystemClock()).now, new_id)
        self._light: AttendantLight | None = None
        self._lock = threading.Lock()
        self._active: tuple[HelpCall, ...] = ()  # a copy for other threads
        self._doubtful: str = ""  # the card reference in doubt
        bus.subscribe(CartChanged, self._cart_changed)
        bus.subscribe(CardAnswered, self._card_answered)
        bus.subscribe(CardRecovered, self._card_recovered)
        bus.subscribe(SaleCommitted, self._sale_committed)
        bus.subscribe(DeviceHealthChanged, self._health_changed)

    @property
    def active(self) -> tuple[HelpCall, ...]:
        """The open and answered calls, oldest first; any thread."""
        with self._lock:
            return self._active

    def use_light(self, light: AttendantLight | None) -> None:
        """Show the calls on this attendant light from now on (None: the kiosk has none)."""
        self._light = light
        if light is not None:
            light.show(self._calls.light)

    def call(self, reason: HelpReason = "customer", detail: str = "") -> HelpCall | None:
        """Open a call (the help button; the bagging check); None when one is active already."""
        return self._changed(self._calls.open(reason, sale_open=self._sale_open(), detail=detail))

    def staff_arrived(self, name: str) -> list[HelpCall]:
        """A member of staff badged or signed in at the kiosk: their calls are dealt with."""
        changes = self._calls.clear_all(name, keep=DECIDED_ELSEWHERE)
        for reason in DECIDED_ELSEWHERE:
            if (answered := self._calls.answer(reason, name)) is not None:
                changes.append(answered)
        for call in changes:
            self._changed(call)
        return changes

    def clear(self, reason: HelpReason, by: str) -> HelpCall | None:
        """Clear one call (the bagging check settled); None when none was active."""
        return self._changed(self._calls.clear(reason, by))

    def _sale_open(self) -> bool:
        checkout = self._checkout
        return checkout.paying or not checkout.cart.is_empty

    def _changed(self, call: HelpCall | None) -> HelpCall | None:
        if call is None:
            return None
        with self._lock:
            self._active = self._calls.active
        log.info(
            "call for help %s: %s (%s) %s%s",
            call.id,
            call.reason,
            call.urgency,
            call.state,
            f" by {call.by}" if call.by else "",
        )
        if self._light is not None:
            self._light.show(self._calls.light)
        self._bus.post(HelpCallChanged(call))
        return call

    def _cart_changed(self, _event: CartChanged) -> None:
        cart = self._checkout.cart
        if self._kiosk and cart.pending_age_checks:
            self.call("age_check")
        elif self._calls.get("age_check") is not None:
            approvers = {x.age_approved_by for x in cart.lines if x.age_approved_by}
            self.clear("age_check", ", ".join(sorted(approvers)) or BY_CUSTOMER)
        if cart.is_empty and self._doubtful and not self._checkout.paying:
            # Staff settled the doubt (the cart cancelled): nothing is left to decide here.
            self._doubt_over(BY_KIOSK)
        if not cart.is_empty and (paper := self._calls.get("paper_out")) is not None:
            self.call("paper_out", paper.detail)  # a sale began without paper: now urgent

    def _card_answered(self, event: CardAnswered) -> None:
        result = event.result
        if result is not None and result.outcome == "unknown":
            self._doubtful = event.request.merchant_reference
            self.call("payment_in_doubt", f"card payment {self._doubtful}")

    def _card_recovered(self, event: CardRecovered) -> None:
        if event.resolution == "needs_staff":
            self._doubtful = self._doubtful or event.reference
            self.call("payment_in_doubt", f"card payment {event.reference}: {event.detail}")
        elif event.reference == self._doubtful or not self._doubtful:
            self._doubt_over(BY_KIOSK)

    def _sale_committed(self, _event: SaleCommitted) -> None:
        if self._doubtful:  # staff decided the payment in doubt as paid, or recovery sold it
            self._doubt_over(BY_KIOSK)

    def _doubt_over(self, by: str) -> None:
        self._doubtful = ""
        call = self._calls.get("payment_in_doubt")
        self.clear("payment_in_doubt", call.by if call is not None and call.by else by)

    def _health_changed(self, event: DeviceHealthChanged) -> None:
        health = event.health
        if health.kind != "printer":
            return
        if health.reason == PAPER_OUT:
            self.call("paper_out", f"{health.device}: {PAPER_OUT}")
        elif self._calls.get("paper_out") is not None and health.state == "ok":
            self.clear("paper_out", BY_KIOSK)  # paper loaded: the printer says so itself
