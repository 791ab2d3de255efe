"""The till's shift as every staff screen shows it: open or not, its number, who opened it."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from appliance.core.shift import Shift
from appliance.errors import ApplianceError
from appliance.screens.presenters.context import ScreenContext

log = logging.getLogger(__name__)


class ShiftState(EventDispatcher):
    """The open shift, read from the shift book when a screen asks (one indexed SELECT)."""

    is_open = BooleanProperty(False)
    number = NumericProperty(0)
    text = StringProperty("")  # "Shift 3 since 06.12.26, 09:12 (Anna)", or "No shift is open"

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self.shift: Shift | None = None
        self._names: dict[str, str] = {}  # staff id -> name, read when an id is new
        ctx.session.bind(language=lambda *_args: self._show())
        self.refresh()

    @property
    def currency(self) -> str:
        """The till's currency: counts, moves and reports are in it."""
        return self._ctx.settings.store.currency

    def name_of(self, staff_id: str) -> str:
        """A staff member's name for their id (the id itself for someone no longer listed)."""
        if staff_id not in self._names:
            try:
                self._names = {m.staff_id: m.name for m in self._ctx.stores.staff.members()}
            except ApplianceError as err:
                log.warning("staff names not read: %s", err)
        return self._names.get(staff_id, staff_id)

    def refresh(self) -> Shift | None:
        """Read the open shift again (after it opened or closed); None when there is none."""
        try:
            self.shift = self._ctx.stores.shifts.current()
        except ApplianceError as err:
            log.warning("the open shift could not be read: %s", err)
            self.shift = None
        self._show()
        return self.shift

    def _show(self) -> None:
        tr = self._ctx.tr
        shift = self.shift
        self.is_open = shift is not None
        if shift is None:
            self.number = 0
            self.text = tr._("No shift is open on this till.")
            return
        self.number = shift.number
        self.text = tr._("Shift {number} since {when} ({staff})").format(
            number=shift.number,
            when=tr.datetime(shift.opened_at.astimezone()),
            staff=self.name_of(shift.staff),
        )
