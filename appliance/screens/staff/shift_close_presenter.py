"""Closing a shift: the cash counted by denomination against what is expected, then the Z.

A difference over the till's threshold needs a supervisor's sign-off (the view asks for it
with the approval dialog); the shift book closes the shift and makes its Z report in one
transaction, and the report screen shows and prints it.
"""

from __future__ import annotations

import logging
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from appliance.core.reports import ShiftClosed, TillReport
from appliance.core.shift import ShiftClosing, SignOffNeeded
from appliance.core.staff import StaffMember
from appliance.errors import ApplianceError
from appliance.screens.presenters.cash_count import CashCounter
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.messages import staff_message
from appliance.screens.presenters.shift_state import ShiftState
from appliance.screens.staff.report_presenter import ReportPresenter
from appliance.screens.staff.shift_open_presenter import open_drawer_for

log = logging.getLogger(__name__)

SCREEN = "shift_close"
Closed = tuple[ShiftClosing, TillReport]


class ShiftClosePresenter(EventDispatcher):
    """The close-shift screen: expected, counted, the difference, and Close shift."""

    expected = NumericProperty(0)
    expected_text = StringProperty("")
    difference = NumericProperty(0)  # counted - expected: negative is cash missing
    difference_text = StringProperty("")
    over_threshold = BooleanProperty(False)  # closing needs a supervisor's sign-off
    signoff_note = StringProperty("")  # "Over €5.00: a supervisor signs off." while it does
    saving = BooleanProperty(False)
    loading = BooleanProperty(False)  # the expected cash is being read
    message = StringProperty("")

    def __init__(
        self, ctx: ScreenContext, shift: ShiftState, report: ReportPresenter, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._shift = shift
        self._report = report
        self.counter = CashCounter(ctx.tr, shift.currency, ctx.settings.till.denominations)
        self.counter.bind(total=lambda *_args: self._update())
        ctx.session.bind(language=lambda *_args: self._refresh_texts())

    @property
    def threshold(self) -> int:
        """The largest difference a shift closes with and no supervisor (minor units)."""
        return self._ctx.settings.till.signoff_threshold

    def open(self) -> bool:
        """Read what the drawer should hold (off the main thread: it adds up the whole
        shift), then show the close screen with nothing counted. False while reading."""
        if self.loading:
            return False
        self.counter.clear()
        self.message = ""
        self._read_expected(then_show=True)
        return True

    def open_drawer(self) -> bool:
        """Open the drawer to count it; recorded as a no-sale for the close."""
        return open_drawer_for(self._ctx, "shift_close")

    def needs_signoff(self) -> bool:
        """True when the difference is over the threshold and no supervisor is logged in."""
        staff = self._ctx.session.staff
        return self.over_threshold and not (staff is not None and staff.is_supervisor)

    def signoff_reason(self) -> str:
        """What the approval dialog says: how much is off."""
        return self._ctx.tr._(
            "The counted cash is {difference} off what is expected. A supervisor signs off."
        ).format(difference=self.difference_text)

    def close(self, supervisor: StaffMember | None = None) -> bool:
        """Close the shift with the count (off the main thread); then its Z is shown and printed."""
        tr = self._ctx.tr
        staff = self._ctx.session.staff
        if staff is None:
            self.message = tr._("Please log in first.")
            return False
        if self._shift.refresh() is None:
            self.message = tr._("No shift is open on this till.")
            return False
        if supervisor is None and staff.is_supervisor:
            supervisor = staff  # a supervisor closing signs off their own count
        if self.needs_signoff() and not (supervisor is not None and supervisor.is_supervisor):
            self.message = tr._("A supervisor must sign off a difference of more than {amount}.")
            self.message = self.message.format(amount=self._money(self.threshold))
            return False
        if self.saving or self.loading:
            return False
        counted = self.counter.counted()
        signed = supervisor.staff_id if supervisor is not None else ""
        shifts = self._ctx.stores.shifts
        self.saving = True
        self.message = ""
        self._ctx.writes.run(
            lambda: shifts.close(counted, staff.staff_id, supervisor=signed), self._closed
        )
        return True

    def cancel(self) -> None:
        """Back to the till; the shift stays open."""
        self._ctx.session.go("till")

    def _closed(self, result: Closed | None, error: ApplianceError | None) -> None:
        tr = self._ctx.tr
        self.saving = False
        if isinstance(error, SignOffNeeded):
            # Cash moved in the meantime (a sale on another screen): the figures are new.
            self._read_expected()
            self.message = tr._("A supervisor must sign off this difference.")
            return
        if result is None:
            self.message = staff_message(tr, error)
            return
        closing, report = result
        log.info(
            "shift %d closed: expected %d, counted %d, Z %d",
            report.shift_number,
            closing.expected,
            closing.counted_total,
            report.number,
        )
        self._ctx.bus.post(ShiftClosed(closing, report))  # the journal's uploader wakes
        self._shift.refresh()
        self._report.made(report)

    def _read_expected(self, *, then_show: bool = False) -> None:
        self.loading = True
        shifts = self._ctx.stores.shifts

        def read(expected: int | None, error: ApplianceError | None) -> None:
            self.loading = False
            if expected is None:
                self.message = staff_message(self._ctx.tr, error)
            self.expected = expected or 0
            self._update()
            if then_show:
                self._ctx.session.go(SCREEN)

        self._ctx.writes.run(shifts.expected_cash, read)

    def _update(self) -> None:
        self.difference = self.counter.total - self.expected
        self.over_threshold = abs(self.difference) > self.threshold
        self._refresh_texts()

    def _refresh_texts(self) -> None:
        self.expected_text = self._money(self.expected)
        sign = "+" if self.difference > 0 else ""
        self.difference_text = sign + self._money(self.difference)
        self.signoff_note = (
            self._ctx.tr._("Over {amount}: a supervisor signs off.").format(
                amount=self._money(self.threshold)
            )
            if self.over_threshold
            else ""
        )

    def _money(self, minor: int) -> str:
        return self._ctx.tr.money(minor, self._shift.currency)
