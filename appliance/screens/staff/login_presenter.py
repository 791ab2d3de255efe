"""Staff login: a PIN typed on the keypad or a badge tapped on the reader."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import StringProperty

from appliance.core.devices import CardTapped
from appliance.core.staff import StaffMember
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter
from appliance.screens.staff.access import StaffAccess

log = logging.getLogger(__name__)

SCREEN = "staff_login"


class StaffLoginPresenter(EventDispatcher):
    """Checks a PIN or badge and logs the member in; wrong PINs count towards the lockout."""

    message = StringProperty("")  # why the last try did not log anyone in

    def __init__(
        self, ctx: ScreenContext, access: StaffAccess, router: InputRouter, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self.access = access
        router.on_tap(SCREEN, self._tapped)

    def start(self) -> None:
        """The login screen came up: nothing from an earlier try is shown."""
        self.message = ""

    def submit(self, pin: str) -> None:
        """The PIN keypad's OK."""
        shown = self.access.submit_pin(pin, self._answered)
        if shown is not None:
            self.message = shown

    def _answered(self, member: StaffMember | None) -> None:
        if self._ctx.session.screen != SCREEN:
            return  # they went back while the PIN was checked: no login behind their back
        if member is None:
            self.message = self._ctx.tr._("This PIN is not recognised. Please try again.")
        else:
            self._login(member)

    def _tapped(self, event: CardTapped) -> None:
        member = self.access.by_badge(event.uid)
        if member is None:
            log.info("unknown badge %s at the login", event.uid)
            self.message = self._ctx.tr._("This badge is not recognised.")
        else:
            self._login(member)

    def _login(self, member: StaffMember) -> None:
        self.message = ""
        session = self._ctx.session
        session.login(member)
        session.go("till")
