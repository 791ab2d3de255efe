"""Calls for help at a kiosk: why, how urgent, open -> answered -> cleared, the light they imply.

A call is opened by the customer (the help button) or by the kiosk itself (an age check,
the bagging area, a card payment in doubt, the receipt printer out of paper). There is at
most one call per reason at a time: a second press of the button, or a second restricted
item, joins the call already open instead of ringing again.

Urgency. Two reasons are urgent while a sale is open, because the customer cannot finish
and may walk away with the store owing or owed money:
- payment_in_doubt: the card may have been charged with no sale recorded; only staff can
  decide, and the customer should not leave before they have (always during a sale: the
  doubt arises only while paying);
- paper_out during a sale: the customer is about to pay or has paid and gets no receipt,
  and the next customer cannot buy either.
Paper out with no sale open, and every other reason, is a plain call for help.

The attendant light shows the calls at a glance: flashing while an urgent call waits for
an answer, steady while any call is open or answered (help is needed or on its way), off
once all are cleared. The model is driven from one thread (the main loop); it does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol

from appliance.core.events import Event

HelpReason = Literal["customer", "age_check", "bagging", "payment_in_doubt", "paper_out"]
Urgency = Literal["help", "urgent"]
CallState = Literal["open", "answered", "cleared"]
LightState = Literal["off", "steady", "flashing"]

REASONS: tuple[HelpReason, ...] = (
    "customer",
    "age_check",
    "bagging",
    "payment_in_doubt",
    "paper_out",
)
# Urgent while a sale is open (see the module docstring for why each one).
URGENT_DURING_SALE: frozenset[HelpReason] = frozenset({"payment_in_doubt", "paper_out"})
# Who clears a call the kiosk resolved on its own (recovery settled a payment, paper loaded).
BY_KIOSK = "kiosk"


def urgency_of(reason: HelpReason, *, sale_open: bool) -> Urgency:
    """How urgent a call for `reason` is; payment in doubt and paper out are urgent in a sale."""
    return "urgent" if sale_open and reason in URGENT_DURING_SALE else "help"


@dataclass(frozen=True, slots=True)
class HelpCall:
    """One call for help; `by` names who answered or cleared it ("" while open)."""

    id: str
    reason: HelpReason
    urgency: Urgency
    state: CallState
    opened_at: datetime  # UTC
    answered_at: datetime | None = None
    cleared_at: datetime | None = None
    by: str = ""
    detail: str = ""  # what the kiosk saw, for staff ("paper out", the card reference)

    @property
    def active(self) -> bool:
        """Open or answered: someone is still needed."""
        return self.state != "cleared"


@dataclass(frozen=True, slots=True)
class HelpCallChanged(Event):
    """A call for help opened, was answered, escalated or cleared."""

    call: HelpCall


class AttendantLight(Protocol):
    """The attendant light on the kiosk's pole; `show()` is thread-safe and never blocks."""

    def show(self, state: LightState) -> None:
        """Turn the light off, on steady, or flashing; a light that fails only logs it."""
        ...


def light_for(calls: tuple[HelpCall, ...] | list[HelpCall]) -> LightState:
    """The attendant light for these calls: flashing for an unanswered urgent one, else steady."""
    active = [c for c in calls if c.active]
    if any(c.urgency == "urgent" and c.state == "open" for c in active):
        return "flashing"
    return "steady" if active else "off"


class HelpCalls:
    """The calls of one kiosk; one thread only (the main loop). Each change returns the call."""

    def __init__(self, now: Callable[[], datetime], new_id: Callable[[], str]) -> None:
        self._now = now
        self._new_id = new_id
        self._calls: dict[HelpReason, HelpCall] = {}  # the active call of each reason

    @property
    def active(self) -> tuple[HelpCall, ...]:
        """The open and answered calls, oldest first."""
        return tuple(sorted(self._calls.values(), key=lambda c: c.opened_at))

    @property
    def light(self) -> LightState:
        """What the attendant light shows now."""
        return light_for(self.active)

    def get(self, reason: HelpReason) -> HelpCall | None:
        """The active call for `reason`, if any."""
        return self._calls.get(reason)

    def open(self, reason: HelpReason, *, sale_open: bool, detail: str = "") -> HelpCall | None:
        """Call for help; None when a call for `reason` is active and nothing about it changed.

        A repeated call joins the active one; it is escalated to urgent when it now is, and
        an answered urgent call rings again (open) if the reason comes back while urgent.
        """
        urgency = urgency_of(reason, sale_open=sale_open)
        current = self._calls.get(reason)
        if current is None:
            call = HelpCall(self._new_id(), reason, urgency, "open", self._now(), detail=detail)
        elif urgency == "urgent" and current.urgency != "urgent":
            call = replace(current, urgency="urgent", state="open", detail=detail or current.detail)
        else:
            return None
        self._calls[reason] = call
        return call

    def answer(self, reason: HelpReason, by: str) -> HelpCall | None:
        """Staff have seen the call and are on their way; None when it is not open."""
        current = self._calls.get(reason)
        if current is None or current.state != "open":
            return None
        call = replace(current, state="answered", answered_at=self._now(), by=by)
        self._calls[reason] = call
        return call

    def clear(self, reason: HelpReason, by: str) -> HelpCall | None:
        """The need is over; None when no call for `reason` is active."""
        current = self._calls.pop(reason, None)
        if current is None:
            return None
        return replace(current, state="cleared", cleared_at=self._now(), by=by)

    def clear_all(self, by: str, *, keep: frozenset[HelpReason] = frozenset()) -> list[HelpCall]:
        """Clear every active call but those of `keep` (what a badge alone cannot settle)."""
        return [
            call
            for reason in list(self._calls)
            if reason not in keep and (call := self.clear(reason, by)) is not None
        ]
