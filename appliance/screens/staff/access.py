"""Who is at the till: staff found by PIN (on a worker thread) or badge, and the PIN lockout."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kivy.clock import Clock, ClockEvent
from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, NumericProperty

from appliance.core.events import Event
from appliance.core.staff import StaffMember
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.staff.lockout import PinLockout

log = logging.getLogger(__name__)

Answer = Callable[[StaffMember | None], None]


@dataclass(frozen=True, slots=True)
class StaffPinChecked(Event):
    """A PIN check finished on its worker thread; `member` is None for a wrong PIN."""

    token: int
    member: StaffMember | None


class StaffAccess(EventDispatcher):
    """PIN and badge checks for logins and approvals, sharing one wrong-PIN lockout."""

    locked = BooleanProperty(False)  # PIN entry refused after too many wrong PINs
    seconds_left = NumericProperty(0)
    checking = BooleanProperty(False)  # a PIN is being checked (about 60 ms per member)

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bus = ctx.bus
        self._tr = ctx.tr
        self.directory = ctx.stores.staff
        self.lockout = PinLockout()
        self._tokens = itertools.count(1)
        self._waiting: dict[int, Answer] = {}
        self._ticker: ClockEvent | None = None
        ctx.bus.subscribe(StaffPinChecked, self._checked)

    def check_pin(self, pin: str, answer: Answer) -> bool:
        """Find who has this PIN off the main thread; `answer` runs on the main loop.

        Returns False (and checks nothing) while PIN entry is locked out.
        """
        if self.lockout.locked:
            self._tick()
            return False
        token = next(self._tokens)
        self._waiting[token] = answer
        self.checking = True
        # One scrypt per member: far too slow for a frame, so a short-lived worker does it.
        worker = threading.Thread(
            target=self._check, args=(token, pin), name="staff-pin", daemon=True
        )
        worker.start()
        return True

    def submit_pin(self, pin: str, answer: Answer) -> str | None:
        """A keypad's OK: start the check; what to show meanwhile, or None when none started."""
        if not pin or self.checking:
            return None
        if not self.check_pin(pin, answer):
            return self._tr._("Too many wrong PINs. Please wait before trying again.")
        return self._tr._("Checking…")

    def by_badge(self, uid: str) -> StaffMember | None:
        """Who carries this badge (one indexed lookup: fine on the main thread)."""
        member = self.directory.by_badge(uid)
        if member is not None:
            self.lockout.succeeded()
        return member

    def _check(self, token: int, pin: str) -> None:
        member = None
        try:
            member = self.directory.by_pin(pin)
        except Exception:  # a store failure must still answer, or the screen waits forever
            log.exception("PIN check failed")
        finally:
            self.directory.close_thread_connection()  # this worker's own, not the main thread's
        self._bus.post(StaffPinChecked(token, member))

    def _checked(self, event: StaffPinChecked) -> None:
        answer = self._waiting.pop(event.token, None)
        self.checking = bool(self._waiting)
        if event.member is None:
            if self.lockout.failed():
                log.warning("PIN entry locked for %.0f s after wrong PINs", self.lockout.seconds)
            self._tick()
        else:
            self.lockout.succeeded()
        if answer is not None:
            answer(event.member)

    def _tick(self, *_args: Any) -> None:
        """Show the lockout's countdown; stops itself when the lockout ends."""
        self.seconds_left = self.lockout.remaining()
        self.locked = self.seconds_left > 0
        if self.locked and self._ticker is None:
            self._ticker = Clock.schedule_interval(self._tick, 0.5)
        elif not self.locked and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
