"""The help button and what the customer sees of the kiosk's calls for help."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, StringProperty

from appliance.core.help_calls import HelpCallChanged
from appliance.screens.presenters.context import ScreenContext

log = logging.getLogger(__name__)


class HelpPresenter(EventDispatcher):
    """Opens the customer's call and follows every call: `calling` while any is active."""

    calling = BooleanProperty(False)
    status = StringProperty("")  # "Help is on the way", and whether staff answered

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        ctx.bus.subscribe(HelpCallChanged, self._changed)

    def call(self) -> None:
        """The customer pressed Help: one call, however often it is pressed."""
        desk = self._ctx.services.app.help_desk
        if desk is None:
            return
        desk.call("customer")
        self._show()

    def _changed(self, _event: HelpCallChanged) -> None:
        self._show()

    def _show(self) -> None:
        desk = self._ctx.services.app.help_desk
        active = desk.active if desk is not None else ()
        tr = self._ctx.tr
        self.calling = bool(active)
        if not active:
            self.status = ""
        elif any(call.state == "answered" for call in active):
            self.status = tr._("Help is on the way. A member of staff is coming.")
        else:
            self.status = tr._("Help is on the way.")
