"""Staff mode on the real app: cash with the drawer, void, discounts, park, no-sale, reprint."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kivy.core.window import Window
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from appliance.core.staff import StaffMember
from appliance.core.tender import Tender
from appliance.drivers.sim.drawer import SimDrawer
from appliance.screens.i18n import tr
from appliance.screens.staff.approval import StaffApproval
from appliance.screens.staff.dialogs import DiscountDialog, NoSaleDialog, ParkDialog
from appliance.screens.staff.status import DeviceLine
from appliance.screens.staff.till import TillRow
from appliance.screens.widgets import Keypad, TextKeyboard
from appliance.service.demo import (
    DEMO_CASHIER_BADGE,
    DEMO_CASHIER_PIN,
    DEMO_SUPERVISOR_PIN,
)
from appliance.store.drawer_log import DrawerLog
from appliance.store.staff import StaffDirectory
from tests.screens.harness import Kiosk

COFFEE, WATER, CHOCOLATE = "4006381333931", "5000112548129", "7613289024044"
COFFEE_NAME, WATER_NAME, CHOCOLATE_NAME = (
    "Ground coffee 250 g",
    "Still water 0.5 l",
    "Dark chocolate 100 g",
)


def euros(minor: int) -> str:
    """An amount as the screen shows it (the store is de_DE)."""
    return tr.money(minor, "EUR")


def log_in_cashier(kiosk: Kiosk, *, with_shift: bool = True) -> StaffMember:
    """The demo cashier at the till (login itself is proven in test_staff_login).

    A staffed till sells only in an open shift: one is opened with no float unless
    `with_shift` is False (the shift screens are proven in test_staff_shift).
    """
    member = StaffDirectory(kiosk.services.app.db).by_badge(DEMO_CASHIER_BADGE)
    assert member is not None and member.role == "cashier"
    if with_shift:
        ensure_shift(kiosk)
    kiosk.app.session.login(member)
    kiosk.app.session.go("till")
    kiosk.wait_for_screen("till")
    return member


def ensure_shift(kiosk: Kiosk) -> None:
    """A shift open on the till (with no float) for tests about selling, not about shifts."""
    shifts = kiosk.services.app.stores.shifts
    if shifts.current() is None:
        cashier = StaffDirectory(kiosk.services.app.db).by_badge(DEMO_CASHIER_BADGE)
        assert cashier is not None
        shifts.open(cashier.staff_id, {})
    kiosk.app.shift.refresh()


def rows_are(kiosk: Kiosk, count: int) -> Callable[[], bool]:
    """True once the till lists `count` lines."""
    return lambda: len(kiosk.app.till.rows) == count


def scan_into_till(kiosk: Kiosk, *codes: str) -> None:
    """Real scanner bytes; waits until every line is on the till."""
    before = len(kiosk.app.till.rows)
    for n, code in enumerate(codes, start=1):
        kiosk.scan(code)
        kiosk.wait_for(rows_are(kiosk, before + n), what=f"line of {code}")


def dialog(kind: type[Widget]) -> Widget:
    """The open dialog of this class."""
    found = [w for w in Window.children if isinstance(w, kind)]
    assert found, f"no {kind.__name__} is open"
    return found[0]


def keys_of(holder: Widget) -> dict[str, Widget]:
    """The buttons inside a keypad or keyboard, by their text."""
    return {w.text: w for w in holder.walk(restrict=True) if hasattr(w, "on_release")}


def type_on(kiosk: Kiosk, keypad: Widget, digits: str, enter: str | None = None) -> None:
    """Touch the keys one by one, then the enter key (named by its text) if given."""
    keys = keys_of(keypad)
    for digit in digits:
        kiosk.tap(keys[digit])
    if enter is not None:
        kiosk.tap(keys[enter])


def keypad_in(widget: Widget) -> Keypad:
    """The keypad inside a dialog or screen."""
    return next(w for w in widget.walk(restrict=True) if isinstance(w, Keypad))


def current_screen(kiosk: Kiosk) -> Screen:
    """The screen on show."""
    deck = kiosk.app.deck
    assert deck is not None
    return deck.current_screen


def sim_drawer(kiosk: Kiosk) -> SimDrawer:
    """The simulated cash drawer behind the GPIO adapter."""
    assert kiosk.lab.drawer is not None
    return kiosk.lab.drawer


def shown_button(kiosk: Kiosk, text: str) -> Widget:
    """The button showing `text` on the current screen, usable or not."""
    screen = current_screen(kiosk)
    found = [w for w in screen.walk(restrict=True) if getattr(w, "text", None) == text]
    assert found, f"no {text!r} on {kiosk.screen!r}"
    return found[0]


def row_label(kiosk: Kiosk, name: str) -> Widget:
    """The name label of a till line."""
    for widget in kiosk.widgets():
        parent = widget.parent.parent if widget.parent is not None else None
        if getattr(widget, "text", None) == name and isinstance(parent, TillRow):
            return widget
    raise AssertionError(f"no till line {name!r}")


def test_cash_sale_shows_change_and_kicks_the_drawer(staff_till: Kiosk) -> None:
    member = log_in_cashier(staff_till)
    scan_into_till(staff_till, COFFEE, WATER)
    assert staff_till.app.cart.total == euros(499 + 129)
    staff_till.screenshot("staff-till-cart")

    staff_till.tap_text(tr._("Cash"))
    staff_till.wait_for_screen("cash")
    # Too little handed over: Complete is off and says what is missing.
    type_on(staff_till, keypad_in(current_screen(staff_till)), "500")
    short = shown_button(staff_till, tr._("{amount} still due").format(amount=euros(628 - 500)))
    assert short.disabled and not staff_till.app.cash.can_complete

    staff_till.tap_text(euros(2000))  # the 20 EUR note
    staff_till.find_text(euros(2000 - 628))  # change due, live
    staff_till.screenshot("staff-cash-change")
    kicks_before = sim_drawer(staff_till).kicks
    staff_till.tap_text(tr._("Complete sale"))
    staff_till.wait_for_screen("receipt")

    sale = staff_till.services.app.ledger.last()
    assert sale is not None and sale.kind == "sale" and sale.staff == member.staff_id
    assert [line.name for line in sale.lines] == [COFFEE_NAME, WATER_NAME]
    assert sale.tenders == (Tender("cash", 628, tendered=2000),)
    assert sale.change == 2000 - 628
    assert staff_till.app.session.last_sale_id == sale.id
    # The mock GPIO pin was driven high and low again: one whole pulse, and it was logged.
    staff_till.wait_for(lambda: sim_drawer(staff_till).kicks == kicks_before + 1, what="kick")
    staff_till.wait_for(lambda: sim_drawer(staff_till).pulses, what="a completed kick pulse")
    log = DrawerLog(staff_till.services.app.db)
    staff_till.wait_for(
        lambda: [o for o in log.since() if o.opening.reason == "sale"], what="drawer log row"
    )
    [opening] = [o.opening for o in log.since()]
    assert opening.reason == "sale" and opening.reference == sale.id


def test_void_a_line_and_discounts_within_and_above_the_cashier_limit(staff_till: Kiosk) -> None:
    log_in_cashier(staff_till)
    scan_into_till(staff_till, COFFEE, WATER, CHOCOLATE)
    checkout = staff_till.services.app.checkout
    assert shown_button(staff_till, tr._("Void line")).disabled  # nothing chosen yet

    staff_till.tap(row_label(staff_till, WATER_NAME))
    assert staff_till.app.till.selected > 0
    staff_till.tap_text(tr._("Void line"))
    assert [line.name for line in checkout.cart.lines] == [COFFEE_NAME, CHOCOLATE_NAME]
    assert staff_till.app.till.selected == -1

    # 10 % is the cashier's own limit (settings.screen.cashier_discount_percent).
    staff_till.tap_text(tr._("Discount"))
    dialog(DiscountDialog)
    staff_till.screenshot("staff-till-discount")
    staff_till.tap_text(tr._("{percent} %").format(percent=10))
    staff_till.wait_for(  # the dialog fades out for a tenth of a second
        lambda: not [w for w in Window.children if isinstance(w, DiscountDialog)],
        what="the discount dialog closed",
    )
    assert checkout.cart.discount is not None and checkout.cart.discount.value == 1000
    assert checkout.totals().total == 718 - 72  # 4.99 + 2.19, 10 % off (0.718 rounds to 0.72)
    staff_till.find_text(
        tr._("{percent} % off the cart: {amount}").format(percent=10, amount=euros(-72))
    )

    # 20 % is above it: a supervisor must approve, and a cashier's PIN does not count.
    staff_till.tap_text(tr._("Discount"))
    staff_till.tap_text(tr._("{percent} %").format(percent=20))
    approval = dialog(StaffApproval)
    staff_till.screenshot("staff-approval")
    type_on(staff_till, keypad_in(approval), DEMO_CASHIER_PIN, tr._("Approve"))
    staff_till.wait_for(
        lambda: approval.request.message == tr._("Only a supervisor can approve this."),
        what="the cashier refused as approver",
    )
    staff_till.find_text(tr._("Only a supervisor can approve this."))
    assert checkout.cart.discount.value == 1000
    type_on(staff_till, keypad_in(approval), DEMO_SUPERVISOR_PIN, tr._("Approve"))
    staff_till.wait_for(lambda: approval.parent is None, what="the approval to close")
    assert checkout.cart.discount.value == 2000
    assert "approved by" in checkout.cart.discount.reason


def test_park_then_resume_restores_the_cart(staff_till: Kiosk) -> None:
    log_in_cashier(staff_till)
    checkout = staff_till.services.app.checkout
    scan_into_till(staff_till, COFFEE, WATER)
    parked_lines = checkout.cart.lines

    staff_till.tap_text(tr._("Park"))
    park = dialog(ParkDialog)
    keyboard = next(w for w in park.walk(restrict=True) if isinstance(w, TextKeyboard))
    type_on(staff_till, keyboard, "ANN")
    staff_till.find_text("ANN")
    staff_till.screenshot("staff-till-park")
    staff_till.tap_text(tr._("Park the cart"))
    staff_till.wait_for(lambda: checkout.cart.is_empty, what="the parked cart off the till")
    assert staff_till.app.session.message == tr._("Cart parked as {name}.").format(name="ANN")

    # A till with a cart of its own refuses to resume another.
    scan_into_till(staff_till, CHOCOLATE)
    staff_till.tap_text(tr._("Parked carts"))
    staff_till.wait_for_screen("parked")
    staff_till.find_text("ANN")
    staff_till.screenshot("staff-parked-list")
    staff_till.tap_text(tr._("Resume"))
    assert staff_till.screen == "parked"
    assert staff_till.app.session.message == tr._(
        "The till has a cart already. Finish or park it before resuming another."
    )
    assert [line.name for line in checkout.cart.lines] == [CHOCOLATE_NAME]

    staff_till.tap_text(tr._("Back to the till"))
    staff_till.wait_for_screen("till")
    staff_till.tap(row_label(staff_till, CHOCOLATE_NAME))
    staff_till.tap_text(tr._("Void line"))
    staff_till.tap_text(tr._("Parked carts"))
    staff_till.wait_for_screen("parked")
    staff_till.tap_text(tr._("Resume"))
    staff_till.wait_for_screen("till")
    assert checkout.cart.lines == parked_lines
    staff_till.tap_text(tr._("Parked carts"))
    staff_till.wait_for_screen("parked")
    staff_till.find_text(tr._("No carts are parked."))


def _hold_the_writer(kiosk: Kiosk) -> threading.Event:
    """Keep the store-writes thread busy until the returned event is set."""
    gate = threading.Event()
    kiosk.app.ctx.writes.run(lambda: gate.wait(10), lambda _result, _error: None)
    return gate


def _scan_is_refused_while_held(kiosk: Kiosk, code: str, held_message: str) -> None:
    """A real scan meanwhile changes nothing and says why."""
    lines = kiosk.services.app.checkout.cart.lines
    kiosk.scan(code)
    kiosk.wait_for(lambda: kiosk.app.session.message == held_message, what="the refusal")
    assert kiosk.services.app.checkout.cart.lines == lines
    assert shown_button(kiosk, tr._("Cash")).disabled


def test_park_and_resume_are_stored_on_the_writer_while_the_till_waits(
    staff_till: Kiosk,
) -> None:
    """Parking and taking back are durable writes: off the main thread, the cart held."""
    app = staff_till.app
    checkout = staff_till.services.app.checkout
    log_in_cashier(staff_till)
    scan_into_till(staff_till, COFFEE)
    coffee = checkout.cart.lines
    threads: list[str] = []
    parked_carts = app.till._parked
    real_park = parked_carts.park

    def park_and_note_the_thread(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_park(*args, **kwargs)

    parked_carts.park = park_and_note_the_thread  # type: ignore[method-assign]

    gate = _hold_the_writer(staff_till)
    assert app.till.park("BOB")
    _scan_is_refused_while_held(staff_till, WATER, tr._("Wait a moment: the cart is being parked."))
    assert not app.till.park("BOB")  # a second tap parks nothing twice
    gate.set()
    staff_till.wait_for(lambda: checkout.cart.is_empty, what="the parked cart off the till")
    assert len(threads) == 1 and threads[0].startswith("store-writes")
    assert app.cart.held == ""

    app.session.go("parked")
    staff_till.wait_for_screen("parked")
    (row,) = app.parked.rows
    assert row["label"] == "BOB"
    gate = _hold_the_writer(staff_till)
    assert app.parked.resume(row["park_id"])
    app.session.go("till")  # back to the till before the store has answered
    staff_till.wait_for_screen("till")
    # Another code: the scanner drops the same code again within its debounce window.
    _scan_is_refused_while_held(
        staff_till, CHOCOLATE, tr._("Wait a moment: the parked cart is being fetched.")
    )
    gate.set()
    staff_till.wait_for(lambda: checkout.cart.lines == coffee, what="the cart back on the till")
    assert app.session.screen == "till"
    assert app.parked.rows == []


def test_a_taken_cart_the_till_cannot_take_is_parked_again(staff_till: Kiosk) -> None:
    """Taken from the store but refused by the till (it filled meanwhile, not by a scan on
    this screen): the cart goes back to the parked list under its name, not lost."""
    app = staff_till.app
    checkout = staff_till.services.app.checkout
    log_in_cashier(staff_till)
    scan_into_till(staff_till, COFFEE)
    assert app.till.park("BOB")
    staff_till.wait_for(lambda: checkout.cart.is_empty, what="the parked cart off the till")
    app.session.go("parked")
    staff_till.wait_for_screen("parked")
    (row,) = app.parked.rows

    gate = _hold_the_writer(staff_till)
    assert app.parked.resume(row["park_id"])
    checkout.scan(WATER)  # straight into the core: no screen path can while the cart is held
    gate.set()
    staff_till.wait_for(
        lambda: app.session.message == tr._("This parked cart could not be resumed."),
        what="the refusal",
    )
    staff_till.wait_for(lambda: len(app.parked.rows) == 1, what="the cart parked again")
    assert app.parked.rows[0]["label"] == "BOB"
    assert [line.name for line in checkout.cart.lines] == [WATER_NAME]


def test_no_sale_kicks_the_drawer_with_reason_and_staff(staff_till: Kiosk) -> None:
    till = staff_till.app.till
    kicks = sim_drawer(staff_till).kicks
    # Nobody logged in: refused, the drawer stays shut.
    assert till.no_sale("customer_query") is False
    assert sim_drawer(staff_till).kicks == kicks

    member = log_in_cashier(staff_till)
    staff_till.tap_text(tr._("No sale"))
    dialog(NoSaleDialog)
    staff_till.screenshot("staff-till-no-sale")
    staff_till.tap_text(tr._("Change for the float"))
    staff_till.wait_for(lambda: sim_drawer(staff_till).kicks == kicks + 1, what="the kick")
    log = DrawerLog(staff_till.services.app.db)
    staff_till.wait_for(log.since, what="the drawer log row")
    [logged] = log.since()
    assert logged.opening.reason == "no_sale"
    assert logged.opening.staff == member.staff_id
    assert logged.opening.reference == "change_for_float"


def test_reprint_sends_a_copy_of_the_last_receipt(staff_till: Kiosk) -> None:
    member = log_in_cashier(staff_till)
    staff_till.tap_text(tr._("Reprint"))
    staff_till.wait_for_screen("reprint")
    staff_till.tap_text(tr._("Last receipt"))
    assert staff_till.app.reprint.message == tr._("There is no receipt to reprint yet.")
    staff_till.tap_text(tr._("Back to the till"))
    staff_till.wait_for_screen("till")

    scan_into_till(staff_till, COFFEE)
    sale = staff_till.services.app.checkout.pay([Tender.cash(500, 499)], staff=member.staff_id)
    staff_till.app.session.go("till")
    staff_till.wait_for_screen("till")
    printer = staff_till.lab.printer
    assert printer is not None
    printed = len(printer.jobs)
    staff_till.tap_text(tr._("Reprint"))
    staff_till.wait_for_screen("reprint")
    staff_till.tap_text(tr._("Last receipt"))
    staff_till.wait_for(lambda: len(printer.jobs) > printed, what="the reprint")
    job = printer.jobs[-1]
    text = "\n".join(job.lines)
    assert "COPY" in text and sale.receipt_number in text


def test_status_shows_devices_and_todays_totals(staff_till: Kiosk) -> None:
    member = log_in_cashier(staff_till)
    scan_into_till(staff_till, COFFEE, WATER)
    staff_till.services.app.checkout.pay([Tender.cash(1000, 628)], staff=member.staff_id)
    staff_till.app.session.go("till")
    staff_till.wait_for_screen("till")

    staff_till.tap_text(tr._("Status"))
    staff_till.wait_for_screen("status")
    staff_till.find_text(tr._("No hub configured"))
    staff_till.find_text(tr.n_("{count} document", "{count} documents", 1).format(count=1))
    staff_till.screenshot("staff-status-sync")

    staff_till.tap_text(tr._("Devices"))
    shown = {line.name for line in staff_till.widgets() if isinstance(line, DeviceLine)}
    configured = {health.device for health in staff_till.services.devices.health()}
    assert {"scanner", "printer", "drawer"} <= configured
    assert shown == configured
    staff_till.find_text(tr._("{name} ({kind})").format(name="printer", kind="Receipt printer"))
    staff_till.screenshot("staff-status-devices")

    staff_till.tap_text(tr._("Today"))
    staff_till.find_text(tr._("Net takings"))
    staff_till.find_text(euros(628))
    staff_till.find_text(tr._("Items sold"))
    staff_till.screenshot("staff-status-today")
