"""Every staff screen in its busy states, and every staff dialog, fits the small layouts.

The tablet layout of each screen is checked by test_screenshots; here the Pi's 7" screen
and portrait, where space runs out first, with full lists, long names and open dialogs.
"""

from __future__ import annotations

from collections.abc import Callable

from kivy.core.window import Window
from kivy.uix.modalview import ModalView
from kivy.uix.widget import Widget

from appliance.core.tender import Tender
from appliance.screens.i18n import tr
from appliance.screens.staff.approval import StaffApproval
from tests.screens.harness import Kiosk
from tests.screens.layout_checks import check_screen
from tests.screens.test_staff_flows import (
    CHOCOLATE,
    COFFEE,
    WATER,
    current_screen,
    log_in_cashier,
)

WINE = "8000320010149"  # age restricted: the till shows "Age checked"
# How each dialog is opened over the till (the park dialog is built once and reused).
DIALOGS: dict[str, Callable[[Widget], None]] = {
    "discount": lambda till: till.open_discount(),
    "no-sale": lambda till: till.open_no_sale(),
    "park": lambda till: till.open_park(),
    "approval": lambda _till: StaffApproval(
        reason=tr._("A discount of {percent} % needs a supervisor.").format(percent=50),
        on_approved=lambda _member: None,
    ).open(),
}


def problems() -> list[str]:
    """What the layout checks find, keyboard keys narrower than 48 dp aside (by design)."""
    return [str(f) for f in check_screen() if f.kind != "narrow-key"]


def test_staff_screens_and_dialogs_fit_every_layout(staff_till: Kiosk) -> None:
    app = staff_till.app
    member = log_in_cashier(staff_till)
    checkout = staff_till.services.app.checkout
    # A sale to refund and a parked cart to list.
    for code in (COFFEE, COFFEE, WATER):
        checkout.scan(code)
    sale = checkout.pay([Tender.cash(2000, checkout.totals().total)], staff=member.staff_id)
    checkout.scan(CHOCOLATE)
    assert app.till.park("Table 4, the long name of a regular customer")
    staff_till.wait_for(lambda: checkout.cart.is_empty, what="the parked cart off the till")
    for code in (COFFEE, WATER, CHOCOLATE, WINE):
        checkout.scan(code)
    app.till.apply_discount(10)
    staff_till.pump(3)
    app.till.select(app.till.rows[0]["line_id"])
    x = staff_till.services.app.stores.reports.x_report(member.staff_id)  # a report to show

    found: dict[str, list[str]] = {}
    for layout in ("pi7", "portrait"):
        staff_till.resize(layout)
        for screen, prepare in (
            ("till", lambda: None),
            ("cash", lambda: app.cash.type("1000")),
            ("refund", lambda: app.refund.find(sale.receipt_number)),
            ("parked", lambda: None),
            ("status", lambda: app.staff_status.show("devices")),
        ):
            app.session.go(screen)
            staff_till.wait_for_screen(screen)
            prepare()
            staff_till.pump(3)
            found[f"{layout} {screen}"] = problems()
        app.staff_status.show("today")
        staff_till.pump(2)
        found[f"{layout} status today"] = problems()
        # Those that read the shift first are opened by their presenters, as the till does.
        opens: dict[str, Callable[[], object]] = {
            "shift_close": app.shift_close.open,
            "void": app.void.open,
            "reprint": lambda: app.reprint.open("reports"),
        }
        for screen, prepare in (
            ("shift_open", lambda: app.shift_open.counter.set(2000, 25)),
            ("shift_close", lambda: app.shift_close.counter.set(1, 1234)),
            ("cash_moves", lambda: (app.cash_moves.type("123456"), app.cash_moves.choose("other"))),
            ("report", lambda: app.report.show(x)),
            ("void", lambda: app.void.select(sale.id)),
            ("reprint", lambda: None),
        ):
            app.session.go("till")
            staff_till.wait_for_screen("till")
            opens.get(screen, lambda s=screen: app.session.go(s))()
            staff_till.wait_for_screen(screen)
            prepare()
            staff_till.pump(3)
            found[f"{layout} {screen}"] = problems()

        app.session.go("till")
        staff_till.wait_for_screen("till")
        for name, open_over in DIALOGS.items():
            open_over(current_screen(staff_till))
            staff_till.pump(3)
            found[f"{layout} {name} dialog"] = problems()
            [dialog] = [w for w in Window.children if isinstance(w, ModalView)]
            dialog.dismiss()
            staff_till.wait_for(lambda: not any(isinstance(w, ModalView) for w in Window.children))

    bad = {where: issues for where, issues in found.items() if issues}
    assert not bad, "\n".join(f"{where}:\n  " + "\n  ".join(i) for where, i in bad.items())
