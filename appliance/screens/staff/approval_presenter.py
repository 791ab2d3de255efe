"""A supervisor's approval: their PIN or badge, asked for over the screen that needs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ObjectProperty, StringProperty

from appliance.core.devices import CardTapped
from appliance.core.staff import StaffMember
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter
from appliance.screens.staff.access import StaffAccess

log = logging.getLogger(__name__)


class ApprovalRequest(EventDispatcher):
    """One request for a supervisor; while open it takes every badge tap."""

    message = StringProperty("")
    approved = BooleanProperty(False)
    access: StaffAccess = ObjectProperty(None)  # a property, so kv follows its lockout

    def __init__(
        self,
        ctx: ScreenContext,
        access: StaffAccess,
        router: InputRouter,
        on_approved: Callable[[StaffMember], object],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._router = router
        self._on_approved = on_approved
        self.access = access
        self._open = False

    def open(self) -> None:
        """The dialog is up: badge taps come here, not to the screen below."""
        self._open = True
        self._router.capture_taps(self._tapped)

    def close(self) -> None:
        """The dialog went away (approved or cancelled)."""
        self._open = False
        self._router.release_taps(self._tapped)

    def submit(self, pin: str) -> None:
        """The keypad's OK: check the PIN off the main thread."""
        if self.approved:
            return
        shown = self.access.submit_pin(pin, self._answered)
        if shown is not None:
            self.message = shown

    def _answered(self, member: StaffMember | None) -> None:
        if self._open:
            self._decide(member)

    def _tapped(self, event: CardTapped) -> None:
        self._decide(self.access.by_badge(event.uid))

    def _decide(self, member: StaffMember | None) -> None:
        tr = self._ctx.tr
        if member is None:
            self.message = tr._("Not recognised. Please try again.")
        elif not member.is_supervisor:
            log.info("%s is not a supervisor: approval refused", member.staff_id)
            self.message = tr._("Only a supervisor can approve this.")
        elif not self.approved:
            log.info("approved by supervisor %s", member.staff_id)
            self.message = ""
            self.approved = True
            self._on_approved(member)
