"""Steps on the shift screens by touch, for the shift tests and the full-day test.

Each step starts on the till and ends on the screen it names; it checks nothing beyond
reaching it, so a test asserts what it is about.
"""

from __future__ import annotations

from collections.abc import Mapping

from kivy.uix.widget import Widget

from appliance.core.reports import TillReport
from appliance.core.shift import Shift
from appliance.screens.i18n import tr
from appliance.screens.staff.approval import StaffApproval
from appliance.screens.staff.cash_moves import ReasonDialog
from appliance.screens.staff.count_rows import CountRow
from appliance.screens.widgets import TextKeyboard
from appliance.service.demo import DEMO_SUPERVISOR_PIN
from tests.screens.harness import Kiosk
from tests.screens.test_staff_flows import current_screen, dialog, keypad_in, type_on


def count_row(kiosk: Kiosk, denomination: int) -> CountRow:
    """The count row of a note or coin on the screen on show (scrolled into view)."""
    screen = current_screen(kiosk)
    rows = screen.ids.count_list
    index = next(n for n, row in enumerate(rows.data) if row["denomination"] == denomination)
    row_height = rows.layout_manager.default_size[1]
    hidden = len(rows.data) * row_height - rows.height
    if hidden > 0:  # scroll the row into view, as a finger would
        rows.scroll_y = max(0.0, min(1.0, 1 - index * row_height / hidden))
        kiosk.pump(3)
    for widget in screen.walk(restrict=True):
        if isinstance(widget, CountRow) and widget.denomination == denomination:
            return widget
    raise AssertionError(f"no count row for {denomination} on {kiosk.screen!r}")


def buttons_of(row: Widget) -> dict[str, Widget]:
    """A count row's buttons: "-", the count (by its text) and "+"."""
    return {w.text: w for w in row.walk(restrict=True) if hasattr(w, "on_release")}


def count(kiosk: Kiosk, pieces: Mapping[int, int]) -> None:
    """Touch each row's count, then type its pieces on the screen's keypad."""
    for denomination, n in pieces.items():
        row = count_row(kiosk, denomination)
        kiosk.tap(buttons_of(row)[row.count])
        type_on(kiosk, current_screen(kiosk).ids.keypad, str(n))
        kiosk.wait_for(lambda d=denomination, n=n: count_row(kiosk, d).count == str(n))


def open_shift(kiosk: Kiosk, float_count: Mapping[int, int]) -> Shift:
    """Till -> Open shift -> count the float -> Open shift -> till; the shift opened."""
    kiosk.tap(current_screen(kiosk).ids.open_shift)
    kiosk.wait_for_screen("shift_open")
    count(kiosk, float_count)
    kiosk.tap(current_screen(kiosk).ids.open_shift)
    kiosk.wait_for_screen("till")
    shift = kiosk.services.app.stores.shifts.current()
    assert shift is not None
    return shift


def move_cash(kiosk: Kiosk, kind: str, amount: int, reason: str) -> None:
    """Till -> Cash in/out -> in or out, amount, a preset reason's words or typed words."""
    kiosk.tap_text(tr._("Cash in/out"))
    kiosk.wait_for_screen("cash_moves")
    screen = current_screen(kiosk)
    kiosk.tap(screen.ids.cash_in if kind == "in" else screen.ids.cash_out)
    type_on(kiosk, screen.ids.keypad, str(amount))
    presets = {row["text"]: row["key"] for row in kiosk.app.cash_moves.reasons}
    if reason in presets:
        kiosk.tap_text(reason)
    else:
        kiosk.tap_text(tr._("Other reason"))
        asked = dialog(ReasonDialog)
        keyboard = next(w for w in asked.walk(restrict=True) if isinstance(w, TextKeyboard))
        type_on(kiosk, keyboard, reason)
        kiosk.tap(asked.ids.use)
    kiosk.tap(screen.ids.record)
    kiosk.wait_for_screen("till")


def x_report(kiosk: Kiosk) -> TillReport:
    """Till -> X report -> the report screen; the X on show."""
    kiosk.tap_text(tr._("X report"))
    kiosk.wait_for_screen("report")
    report = kiosk.app.report.report
    assert report is not None and report.kind == "x"
    return report


def report_bottom(kiosk: Kiosk) -> None:
    """Scroll the report on show to its end (the cash and the grand total)."""
    current_screen(kiosk).ids.lines.scroll_y = 0
    kiosk.pump(3)


def supervisor_approves(kiosk: Kiosk) -> None:
    """The supervisor types their PIN into the approval dialog on show."""
    approval = dialog(StaffApproval)
    type_on(kiosk, keypad_in(approval), DEMO_SUPERVISOR_PIN, tr._("Approve"))
    kiosk.wait_for(lambda: approval.parent is None, what="the approval to close")


def close_shift(kiosk: Kiosk, counted: Mapping[int, int], *, sign_off: bool) -> TillReport:
    """Till -> Close shift -> count -> Close shift (a supervisor signs) -> the Z on show."""
    kiosk.tap_text(tr._("Close shift"))
    kiosk.wait_for_screen("shift_close")
    count(kiosk, counted)
    kiosk.tap(current_screen(kiosk).ids.close_shift)
    if sign_off:
        supervisor_approves(kiosk)
    kiosk.wait_for_screen("report", timeout=20)
    report = kiosk.app.report.report
    assert report is not None and report.kind == "z"
    return report
