"""The card terminal's day on the staff status screen: closed through the terminal, refused
while a card payment is unresolved, and what only staff can settle listed beside the devices."""

from __future__ import annotations

from appliance.core.cart import Cart
from appliance.core.payment import PaymentRequest
from appliance.drivers.sim.zvt_terminal import ZvtEmulator
from appliance.screens.i18n import tr
from appliance.screens.staff.status import DeviceLine
from tests.screens.harness import Kiosk
from tests.screens.test_card_flows import sell_by_card_at_the_till
from tests.screens.test_staff_flows import euros, log_in_cashier

COFFEE = "4006381333931"


def emulator(kiosk: Kiosk) -> ZvtEmulator:
    """The lab's ZVT terminal emulator."""
    lab = kiosk.services.app.lab
    assert lab is not None and lab.terminal is not None
    return lab.terminal


def open_devices_status(kiosk: Kiosk) -> None:
    """From the till to the status screen's devices section."""
    kiosk.app.session.go("till")
    kiosk.wait_for_screen("till")
    kiosk.tap_text(tr._("Status"))
    kiosk.wait_for_screen("status")
    kiosk.tap_text(tr._("Devices"))


def test_the_terminal_day_closes_with_its_count_and_amount(staff_till: Kiosk) -> None:
    sell_by_card_at_the_till(staff_till, COFFEE)
    open_devices_status(staff_till)

    staff_till.tap_text(tr._("Close the card terminal's day"))

    status = staff_till.app.staff_status
    staff_till.wait_for(lambda: not status.closing_day, what="the End-of-Day")
    assert status.day_note == tr._(
        "The terminal's day is closed: {count} payments, {amount}."
    ).format(count=1, amount=euros(499))
    sent = [apdu.command for apdu in emulator(staff_till).received]
    assert (0x06, 0x50) in sent
    staff_till.screenshot("staff-status-terminal-day")


def test_end_of_day_is_refused_while_a_card_payment_is_unresolved(staff_till: Kiosk) -> None:
    log_in_cashier(staff_till)
    journal = staff_till.services.app.stores.payments
    journal.begin(PaymentRequest(499, "EUR", "till-1-left-open"), Cart("EUR"))
    open_devices_status(staff_till)

    staff_till.tap_text(tr._("Close the card terminal's day"))

    status = staff_till.app.staff_status
    staff_till.wait_for(lambda: not status.closing_day, what="the refusal")
    assert "card payments are unresolved: till-1-left-open" in status.day_note
    assert (0x06, 0x50) not in [apdu.command for apdu in emulator(staff_till).received]


def test_a_card_payment_only_staff_can_settle_is_listed_with_the_devices(
    staff_till: Kiosk,
) -> None:
    log_in_cashier(staff_till)
    journal = staff_till.services.app.stores.payments
    journal.begin(PaymentRequest(499, "EUR", "till-1-in-doubt"), Cart("EUR"))
    emulator(staff_till).close()  # recovery cannot ask the terminal
    gate = staff_till.services.app.card_gate
    assert gate is not None
    gate.recover()
    staff_till.wait_for(lambda: gate.unresolved != (), what="recovery gave up")

    open_devices_status(staff_till)
    staff_till.app.staff_status.refresh()

    lines = {line.name: line for line in staff_till.widgets() if isinstance(line, DeviceLine)}
    assert "till-1-in-doubt" in lines
    assert lines["till-1-in-doubt"].state_text == tr._("needs staff")
