"""The help button and an automatic call for help, in the real kiosk app offscreen."""

from __future__ import annotations

from appliance.service.demo import DEMO_CASHIER_BADGE
from tests.screens.customer_steps import scan_and_wait, tap_card
from tests.screens.harness import Kiosk

COFFEE = "4006381333931"
WINE = "8000320010149"  # 18+


def active(kiosk: Kiosk) -> list[tuple[str, str]]:
    desk = kiosk.services.app.help_desk
    assert desk is not None
    return [(call.reason, call.state) for call in desk.active]


def test_help_opens_one_call_and_the_screen_says_help_is_on_the_way(kiosk: Kiosk) -> None:
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.wait_for_screen("shop")
    kiosk.tap_text("Help")
    kiosk.wait_for(lambda: kiosk.app.help.calling, what="the call shown")
    assert kiosk.visible(kiosk.find_text("Help is on the way."))
    kiosk.tap_text("Help")  # pressed again: still one call
    kiosk.pump(2)
    assert active(kiosk) == [("customer", "open")]
    kiosk.screenshot("customer-help-called")


def test_wine_calls_for_help_and_the_approving_badge_clears_every_call(kiosk: Kiosk) -> None:
    scan_and_wait(kiosk, WINE, 1)
    kiosk.wait_for_screen("shop")
    kiosk.wait_for(lambda: kiosk.app.help.calling, what="the age check's call")
    assert active(kiosk) == [("age_check", "open")]
    kiosk.find_text("Help is on the way.")
    kiosk.tap_text("Help")
    kiosk.wait_for(lambda: len(active(kiosk)) == 2, what="the customer's call too")
    tap_card(kiosk, DEMO_CASHIER_BADGE)  # staff approve at the basket
    kiosk.wait_for(lambda: not kiosk.app.help.calling, what="every call cleared")
    assert active(kiosk) == []
