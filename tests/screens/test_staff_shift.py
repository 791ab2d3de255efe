"""A shift on the real staffed till: open with a float, cash in and out, X, close, Z.

Drives the app offscreen with touches; screenshots in tests/artifacts/staff-shift-*.png.
"""

from __future__ import annotations

from pathlib import Path

from appliance.core.tender import Tender
from appliance.screens.i18n import tr
from appliance.settings import parse_settings
from tests.screens.harness import Kiosk, open_kiosk
from tests.screens.shift_steps import (
    buttons_of,
    close_shift,
    count,
    count_row,
    move_cash,
    open_shift,
    report_bottom,
    supervisor_approves,
    x_report,
)
from tests.screens.test_staff_flows import (
    COFFEE,
    current_screen,
    euros,
    log_in_cashier,
    scan_into_till,
    sim_drawer,
)


def test_without_a_shift_the_till_offers_to_open_one_and_counts_the_float(
    staff_till: Kiosk,
) -> None:
    app = staff_till.app
    member = log_in_cashier(staff_till, with_shift=False)
    assert not app.shift.is_open
    staff_till.find_text(tr._("Open a shift to start selling."))
    staff_till.find_text(tr._("No shift is open on this till."))
    assert current_screen(staff_till).ids.open_shift.opacity == 1
    staff_till.scan(COFFEE)  # no sale starts: the till says why
    staff_till.wait_for(
        lambda: (
            app.session.message
            == tr._("Sales start when a shift is open. Please ask a member of staff.")
        ),
        what="the refusal",
    )
    assert app.services.app.checkout.cart.is_empty
    staff_till.screenshot("staff-shift-none")

    staff_till.tap_text(tr._("Open shift"))
    staff_till.wait_for_screen("shift_open")
    count(staff_till, {2000: 5})  # five 20s typed on the keypad
    for _ in range(2):  # and two 10s by +
        staff_till.tap(buttons_of(count_row(staff_till, 1000))["+"])
    staff_till.tap(buttons_of(count_row(staff_till, 1))["+"])  # a cent, far down the list
    staff_till.find_text(tr._("Float: {amount}").format(amount=euros(12001)))
    staff_till.screenshot("staff-shift-open")
    staff_till.tap(current_screen(staff_till).ids.open_shift)
    staff_till.wait_for_screen("till")

    shift = staff_till.services.app.stores.shifts.current()
    assert shift is not None and shift.staff == member.staff_id
    assert shift.float_count == {2000: 5, 1000: 2, 1: 1} and shift.float_total == 12001
    assert app.shift.is_open and app.shift.number == shift.number
    staff_till.find_text(tr._("Scan an item or find it to start a sale."))
    assert current_screen(staff_till).ids.open_shift.opacity == 0


def test_a_shift_from_its_float_to_its_z_report(staff_till: Kiosk) -> None:
    app = staff_till.app
    shifts = staff_till.services.app.stores.shifts
    printer = staff_till.lab.printer
    assert printer is not None
    member = log_in_cashier(staff_till, with_shift=False)
    open_shift(staff_till, {2000: 5, 1000: 2})

    scan_into_till(staff_till, COFFEE)  # a cash sale of 4.99
    checkout = staff_till.services.app.checkout
    checkout.pay([Tender.cash(500, checkout.totals().total)], staff=member.staff_id)
    app.session.go("till")
    staff_till.wait_for_screen("till")

    kicks = sim_drawer(staff_till).kicks
    move_cash(staff_till, "out", 2000, tr._("Bank deposit"))
    staff_till.wait_for(lambda: sim_drawer(staff_till).kicks > kicks, what="the drawer")
    move_cash(staff_till, "in", 500, "TIPS")
    moves = [(m.kind, m.amount, m.reason, m.staff) for m in shifts.movements()]
    assert moves == [
        ("out", 2000, "bank_deposit", member.staff_id),
        ("in", 500, "TIPS", member.staff_id),
    ]

    printed = len(printer.jobs)
    x = x_report(staff_till)
    assert x.expected_cash == 12000 + 499 - 2000 + 500
    report_bottom(staff_till)
    staff_till.find_text(tr._("Expected in the drawer"))
    staff_till.find_text(euros(x.expected_cash))
    staff_till.screenshot("staff-shift-x-report")
    staff_till.wait_for(lambda: len(printer.jobs) > printed, what="the X on paper")
    staff_till.tap_text(tr._("Back to the till"))
    staff_till.wait_for_screen("till")

    # 9.99 short is over the 5.00 threshold: a supervisor signs the close off.
    staff_till.tap_text(tr._("Close shift"))
    staff_till.wait_for_screen("shift_close")
    assert app.shift_close.expected == 10999
    count(staff_till, {2000: 5})
    assert app.shift_close.difference == -999 and app.shift_close.over_threshold
    staff_till.find_text(app.shift_close.signoff_note)
    staff_till.screenshot("staff-shift-close")
    printed = len(printer.jobs)
    staff_till.tap(current_screen(staff_till).ids.close_shift)
    supervisor_approves(staff_till)
    staff_till.wait_for_screen("report", timeout=20)

    z = app.report.report
    assert z is not None and z.kind == "z" and z.number == 1
    assert z.counted_cash == 10000 and z.difference == -999 and z.signed_off_by
    assert z.sales_count == 1 and z.cash_in == 500 and z.cash_out == 2000
    staff_till.find_text(tr._("Z report {number}").format(number=1))
    staff_till.screenshot("staff-shift-z-report")
    staff_till.wait_for(lambda: len(printer.jobs) > printed, what="the Z on paper")
    assert shifts.current() is None and not app.shift.is_open

    staff_till.tap_text(tr._("Back to the till"))
    staff_till.wait_for_screen("till")
    staff_till.find_text(tr._("Open shift"))


def test_a_close_within_the_threshold_needs_no_supervisor(staff_till: Kiosk) -> None:
    log_in_cashier(staff_till, with_shift=False)
    open_shift(staff_till, {2000: 1})
    z = close_shift(staff_till, {2000: 1}, sign_off=False)
    assert z.counted_cash == 2000 and z.difference == 0 and not z.signed_off_by


def test_cash_in_francs_is_rounded_to_five_rappen_and_the_z_shows_it(tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "device": {"id": "sim-0001", "receipt_prefix": "SIM"},
            "database": {"path": str(tmp_path / "state" / "appliance.db")},
            "store": {"name": "Pop-up Bern", "currency": "CHF", "locale": "de_CH"},
            "screen": {"mode": "staff", "width": 1280, "height": 800},
        },
        source="test",
    )
    with open_kiosk(tmp_path, settings=settings) as till:
        log_in_cashier(till, with_shift=False)
        open_shift(till, {1000: 2})
        scan_into_till(till, COFFEE)  # 4.99: cash pays 5.00
        assert till.services.app.checkout.totals().total == 499
        till.tap_text(tr._("Cash"))
        till.wait_for_screen("cash")
        cash = till.app.cash
        assert cash.due == 500 and cash.exact_due == 499
        exact = tr.money(499, "CHF")
        till.find_text(tr._("Rounded for cash from {exact}").format(exact=exact))
        till.screenshot("staff-cash-rounded-chf")
        quick = current_screen(till).ids.quick.children
        till.tap(next(b for b in quick if b.text == tr.money(500, "CHF")))
        till.tap_text(tr._("Complete sale"))
        till.wait_for_screen("receipt")
        sale = till.services.app.ledger.last()
        assert sale is not None and sale.total == 499 and sale.rounding == 1
        assert [t.amount for t in sale.tenders] == [500]
        till.app.session.go("till")
        till.wait_for_screen("till")
        z = close_shift(till, {1000: 2, 500: 1}, sign_off=False)
        assert z.rounding == 1 and z.expected_cash == 2500 and z.difference == 0
