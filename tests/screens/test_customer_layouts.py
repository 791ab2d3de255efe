"""Every state of the customer screens fits each layout: nothing off the window or cut."""

from __future__ import annotations

import time

import pytest

from appliance.screens.customer.payment_presenter import STATES
from appliance.screens.widgets import TextKeyboard
from tests.screens.customer_steps import CHOCOLATE, WINE, scan_and_wait, shown, tap_in
from tests.screens.harness import Kiosk
from tests.screens.layout_checks import check_screen

LONG_NOTICE = "The card was declined. Try again, or choose another way to pay."


def problems(kiosk: Kiosk, name: str) -> list[str]:
    """What the layout checks find on the screen on show (narrow keyboard keys are design)."""
    kiosk.pump(3)  # texture sizes and layouts settle over a few frames
    return [f"{name}: {f}" for f in check_screen() if f.kind != "narrow-key"]


def payment_states(kiosk: Kiosk, tag: str) -> list[str]:
    """Each pane of the payment screen, with a notice and a staff name where it has one."""
    payment = kiosk.app.payment
    found: list[str] = []
    for state in STATES:
        payment.notice = LONG_NOTICE
        payment.resolver = "Alex"
        payment.state = state
        found += problems(kiosk, f"customer-{tag}-payment-{state}")
    payment.state = "choose"
    payment.notice = ""
    return found


# The tightest cases: large text on the short 7" screen and on the narrow portrait one;
# the tablet has room to spare. Every screen's first state is checked at every layout
# and theme by test_screenshots.
CASES = [("pi7", True), ("portrait", True), ("tablet", False)]


@pytest.mark.parametrize(
    ("layout", "accessible"),
    CASES,
    ids=[f"{lay}-{'large' if big else 'normal'}" for lay, big in CASES],
)
def test_customer_screens_fit_the_layout(kiosk: Kiosk, layout: str, accessible: bool) -> None:
    kiosk.resize(layout)
    if accessible:
        kiosk.app.theme.high_contrast = kiosk.app.theme.large_text = True
    tag = f"{layout}{'-large' if accessible else ''}"
    session = kiosk.app.session
    scan_and_wait(kiosk, CHOCOLATE, 1)
    scan_and_wait(kiosk, WINE, 2)
    found: list[str] = []

    session.go("browse")
    kiosk.wait_for_screen("browse")
    kiosk.tap_text("Keyboard")
    for letter in "CHOC":
        tap_in(kiosk, shown(kiosk, TextKeyboard)[0], letter)
    kiosk.wait_for(lambda: kiosk.app.browse.results, what="results")
    found += problems(kiosk, f"customer-{tag}-browse-search")

    session.go("age_check")
    kiosk.wait_for_screen("age_check")
    kiosk.app.staff_check.message = "That PIN is not right. Please try again."
    found += problems(kiosk, f"customer-{tag}-age_check")

    session.go("payment")
    kiosk.wait_for_screen("payment")
    found += payment_states(kiosk, tag)

    kiosk.app.idle._ask(time.monotonic() + 3600)  # the dialog, without waiting for it
    found += problems(kiosk, f"customer-{tag}-idle")
    kiosk.app.idle.still_here()
    assert not found, "\n".join(found)
