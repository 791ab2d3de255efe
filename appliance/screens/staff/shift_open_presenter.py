"""Opening a shift: the float counted by denomination, by the staff member logged in."""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, StringProperty

from appliance.core.devices import DrawerOpening
from appliance.core.shift import Shift, ShiftOpened
from appliance.errors import ApplianceError
from appliance.screens.presenters.cash_count import CashCounter
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.messages import staff_message
from appliance.screens.presenters.shift_state import ShiftState

log = logging.getLogger(__name__)


class ShiftOpenPresenter(EventDispatcher):
    """The open-shift screen: the float's count, and Open shift storing it."""

    saving = BooleanProperty(False)  # the shift is being stored; Open waits for it
    message = StringProperty("")  # why the shift did not open

    def __init__(self, ctx: ScreenContext, shift: ShiftState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._shift = shift
        self.counter = CashCounter(ctx.tr, shift.currency, ctx.settings.till.denominations)
        ctx.session.bind(language=lambda *_args: self.counter.refresh())

    def start(self) -> None:
        """The screen came up: nothing counted yet."""
        self.counter.clear()
        self.message = ""

    def open_drawer(self) -> bool:
        """Open the drawer to put the float in; recorded as a no-sale for the shift's float."""
        return open_drawer_for(self._ctx, "shift_open")

    def open_shift(self) -> bool:
        """Store the shift with the counted float (off the main thread); then the till."""
        tr = self._ctx.tr
        staff = self._ctx.session.staff
        if staff is None:
            self.message = tr._("Please log in first.")
            return False
        if self._shift.refresh() is not None:
            self.message = tr._("A shift is already open on this till.")
            return False
        if self.saving:
            return False
        counted = self.counter.counted()
        shifts = self._ctx.stores.shifts
        self.saving = True
        self.message = ""
        self._ctx.writes.run(lambda: shifts.open(staff.staff_id, counted), self._opened)
        return True

    def cancel(self) -> None:
        """Back to the till without opening."""
        self._ctx.session.go("till")

    def _opened(self, shift: Shift | None, error: ApplianceError | None) -> None:
        tr = self._ctx.tr
        self.saving = False
        if shift is None:
            self.message = staff_message(tr, error)
            return
        log.info("shift %d opened by %s, float %d", shift.number, shift.staff, shift.float_total)
        self._ctx.bus.post(ShiftOpened(shift))
        self._shift.refresh()
        self._ctx.session.go("till")
        self._ctx.session.say(
            tr._("Shift {number} is open with a float of {amount}.").format(
                number=shift.number, amount=tr.money(shift.float_total, shift.currency)
            )
        )


def open_drawer_for(ctx: ScreenContext, why: str) -> bool:
    """Open the drawer to count or move cash: a no-sale by the staff member, with `why`."""
    tr = ctx.tr
    if ctx.session.staff is None:
        ctx.session.say(tr._("Please log in first."), "warning")
        return False
    opening = DrawerOpening("no_sale", staff=ctx.session.staff_id, reference=why)
    if not ctx.services.after_sale.kick_drawer(opening):
        ctx.session.say(tr._("There is no cash drawer on this till."), "warning")
        return False
    return True
