"""Staff login on the real app: PIN (wrong, then right), badge over NFC, lockout, logout."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.screens.i18n import tr
from appliance.screens.staff.lockout import PinLockout
from appliance.screens.widgets import Keypad
from appliance.service.demo import DEMO_CASHIER_PIN, DEMO_SUPERVISOR_BADGE
from tests.screens.harness import Kiosk
from tests.screens.test_staff_flows import COFFEE, ensure_shift, scan_into_till, type_on

WRONG_PIN = "2468"  # a valid PIN that no demo member has


@dataclass
class FakeClock:
    """Monotonic time that moves only when told to."""

    at: float = 1000.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return self.at


def login_keypad(kiosk: Kiosk) -> Keypad:
    """The PIN keypad of the login screen."""
    deck = kiosk.app.deck
    assert deck is not None
    keypad: Keypad = deck.get_screen("staff_login").ids.pin
    return keypad


def test_the_fifth_wrong_pin_in_a_row_locks_pin_entry_for_30_seconds() -> None:
    clock = FakeClock()
    lockout = PinLockout(clock)
    for _ in range(4):
        assert lockout.failed() is False
    lockout.succeeded()  # a right PIN starts the count again
    for _ in range(4):
        assert lockout.failed() is False
    assert not lockout.locked
    assert lockout.failed() is True
    assert lockout.locked and lockout.remaining() == 30
    clock.at += 29.5
    assert lockout.locked and lockout.remaining() == 1
    clock.at += 0.5
    assert not lockout.locked and lockout.remaining() == 0


def test_a_wrong_pin_is_refused_then_the_right_one_logs_in_and_out(staff_till: Kiosk) -> None:
    assert staff_till.screen == "staff_login"
    staff_till.screenshot("staff-login")
    keypad = login_keypad(staff_till)
    type_on(staff_till, keypad, WRONG_PIN, tr._("Log in"))
    refused = tr._("This PIN is not recognised. Please try again.")
    staff_till.wait_for(lambda: staff_till.app.staff_login.message == refused, what="refusal")
    staff_till.find_text(refused)
    assert staff_till.app.session.staff is None and staff_till.screen == "staff_login"
    staff_till.screenshot("staff-login-wrong-pin")

    type_on(staff_till, keypad, DEMO_CASHIER_PIN, tr._("Log in"))
    staff_till.wait_for_screen("till")
    staff = staff_till.app.session.staff
    assert staff is not None and staff.name == "Alex" and staff.role == "cashier"
    staff_till.find_text(tr._("Till: {staff}").format(staff="Alex, Cashier"))

    # Logging out with a sale open would leave the cart without its cashier.
    ensure_shift(staff_till)  # a staffed till sells only in an open shift
    scan_into_till(staff_till, COFFEE)
    staff_till.tap_text(tr._("Log out"))
    assert staff_till.screen == "till" and staff_till.app.session.staff is not None
    staff_till.services.app.checkout.cancel()
    staff_till.pump(2)
    staff_till.tap_text(tr._("Log out"))
    staff_till.wait_for_screen("staff_login")
    assert staff_till.app.session.staff is None


def test_a_badge_tapped_on_the_reader_logs_in(staff_till: Kiosk) -> None:
    lab = staff_till.lab
    tag = staff_till.wait_for(lambda: lab.nfc_tag, what="the NFC simulator")
    read: list[bool] = []
    # tap() blocks until the reader has read the card: the frames go on meanwhile.
    tapper = threading.Thread(target=lambda: read.append(tag.tap(DEMO_SUPERVISOR_BADGE)))
    tapper.start()
    try:
        staff_till.wait_for_screen("till", timeout=20)
    finally:
        tapper.join(timeout=10)
    assert read == [True]
    staff = staff_till.app.session.staff
    assert staff is not None and staff.name == "Sam" and staff.is_supervisor
    staff_till.find_text(tr._("Till: {staff}").format(staff="Sam, Supervisor"))


def test_five_wrong_pins_lock_the_keypad_until_the_lockout_ends(staff_till: Kiosk) -> None:
    access = staff_till.app.staff_access
    clock = FakeClock()
    access.lockout.clock = clock
    keypad = login_keypad(staff_till)
    # A PIN no one can have counts as wrong as well (and is refused without hashing).
    for attempt in range(1, 5):
        staff_till.app.staff_login.submit("1111")  # what the keypad's OK forwards
        staff_till.wait_for(lambda: not access.checking, what=f"wrong PIN {attempt}")
    assert not access.locked
    type_on(staff_till, keypad, "1111", tr._("Log in"))
    staff_till.wait_for(lambda: access.locked, what="the lockout")
    assert keypad.disabled
    staff_till.find_text(tr._("Too many wrong PINs. Try again in {seconds} s.").format(seconds=30))
    staff_till.screenshot("staff-login-locked")
    # Even the right PIN is not checked while locked.
    assert access.check_pin(DEMO_CASHIER_PIN, lambda _member: None) is False

    clock.at += 30
    staff_till.wait_for(lambda: not access.locked, what="the lockout to end")
    type_on(staff_till, keypad, DEMO_CASHIER_PIN, tr._("Log in"))
    staff_till.wait_for_screen("till")


def test_staff_log_in_at_a_kiosk_and_return_to_the_welcome(kiosk: Kiosk) -> None:
    kiosk.app.session.go("staff_login")
    kiosk.wait_for_screen("staff_login")
    kiosk.tap_text(tr._("Back"))
    kiosk.wait_for_screen("welcome")

    kiosk.app.session.go("staff_login")
    kiosk.wait_for_screen("staff_login")
    type_on(kiosk, login_keypad(kiosk), DEMO_CASHIER_PIN, tr._("Log in"))
    kiosk.wait_for_screen("till")
    kiosk.tap_text(tr._("Log out"))
    kiosk.wait_for_screen("welcome")
    assert kiosk.app.session.staff is None
