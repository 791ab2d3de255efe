"""A member of staff vouches at the kiosk: a staff badge, or a PIN typed on the screen.

Used where a customer may not go on alone: an age check, a card payment whose outcome is
unknown. A PIN is checked against slow scrypt hashes on a worker thread; after
MAX_PIN_TRIES wrong PINs in a row, PINs are refused for LOCKOUT_SECONDS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kivy.clock import Clock, ClockEvent
from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from appliance.core.events import Event
from appliance.core.staff import StaffMember
from appliance.screens.customer.background import run_in_background
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.lifecycle import when_app_stops

log = logging.getLogger(__name__)

MAX_PIN_TRIES = 5
LOCKOUT_SECONDS = 30

Approved = Callable[[StaffMember], None]


@dataclass(frozen=True, slots=True)
class PinChecked(Event):
    """A PIN was checked on the worker thread; `member` is None when it matched no one."""

    request: int
    member: StaffMember | None


class StaffCheck(EventDispatcher):
    """Who is vouching: `start(on_approved)`, then `pin()` or `badge()`; main thread."""

    message = StringProperty("")  # why a PIN or badge was refused
    checking = BooleanProperty(False)  # a PIN is being checked
    lockout_left = NumericProperty(0)  # seconds until PINs are accepted again

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._directory = ctx.stores.staff
        self._on_approved: Approved | None = None
        self._request = 0
        self._wrong = 0
        self._lockout: ClockEvent | None = None
        ctx.bus.subscribe(PinChecked, self._pin_checked)
        when_app_stops(self._end_lockout)

    def start(self, on_approved: Approved) -> None:
        """Wait for a member of staff; `on_approved(member)` runs once one is known."""
        self._request += 1  # a PIN still being checked belongs to the previous question
        self._on_approved = on_approved
        self.checking = False
        self.message = ""

    def stop(self) -> None:
        """No one is waiting for staff any more."""
        self._request += 1
        self._on_approved = None
        self.checking = False
        self.message = ""

    def pin(self, pin: str) -> None:
        """Check a typed PIN (slow: on a worker thread); the answer comes as PinChecked."""
        tr = self._ctx.tr
        if self._on_approved is None or self.checking:
            return
        if self.lockout_left:
            self.message = self._lockout_text()
            return
        if not pin:
            self.message = tr._("Type your staff PIN, then touch OK.")
            return
        self.checking = True
        self.message = ""
        request, directory, bus = self._request, self._directory, self._ctx.bus

        def check() -> None:
            try:
                member = directory.by_pin(pin)
            finally:
                directory.close_thread_connection()  # this worker's own, not the main thread's
            bus.post(PinChecked(request, member))

        run_in_background("staff-pin-check", check)

    def badge(self, uid: str) -> None:
        """A card was tapped: approve if it is an active staff badge (a fast lookup)."""
        if self._on_approved is None:
            return
        member = self._directory.by_badge(uid)
        if member is None:
            log.info("card %s is not a staff badge", uid)
            self.message = self._ctx.tr._("This card is not a staff badge.")
            return
        self._approve(member, "badge")

    def _pin_checked(self, event: PinChecked) -> None:
        if event.request != self._request:
            return  # the screen that asked has moved on
        self.checking = False
        if event.member is not None:
            self._approve(event.member, "PIN")
            return
        self._wrong += 1
        log.warning("wrong staff PIN (%d in a row)", self._wrong)
        if self._wrong >= MAX_PIN_TRIES:
            self._lock_out()
        else:
            self.message = self._ctx.tr._("That PIN is not right. Please try again.")

    def _approve(self, member: StaffMember, how: str) -> None:
        log.info("staff %s (%s) vouched by %s", member.staff_id, member.role, how)
        self._wrong = 0
        self.message = ""
        on_approved, self._on_approved = self._on_approved, None
        if on_approved is not None:
            on_approved(member)

    def _lock_out(self) -> None:
        self._wrong = 0
        self.lockout_left = LOCKOUT_SECONDS
        self.message = self._lockout_text()
        if self._lockout is not None:
            self._lockout.cancel()
        self._lockout = Clock.schedule_interval(self._count_down, 1.0)

    def _end_lockout(self) -> None:
        if self._lockout is not None:
            self._lockout.cancel()
            self._lockout = None

    def _count_down(self, _dt: float) -> bool:
        self.lockout_left = max(0, self.lockout_left - 1)
        if self.lockout_left:
            self.message = self._lockout_text()
            return True
        self.message = ""
        self._lockout = None
        return False

    def _lockout_text(self) -> str:
        tr = self._ctx.tr
        return tr.n_(
            "Too many wrong PINs. Please wait {seconds} second, or tap a staff badge.",
            "Too many wrong PINs. Please wait {seconds} seconds, or tap a staff badge.",
            int(self.lockout_left),
        ).format(seconds=int(self.lockout_left))
