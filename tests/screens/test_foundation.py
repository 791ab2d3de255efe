"""The kiosk app starts on the real window and a scan reaches the cart on screen."""

from __future__ import annotations

from tests.screens.harness import Kiosk

COFFEE = "4006381333931"


def test_a_scan_on_the_welcome_screen_starts_the_sale(kiosk: Kiosk) -> None:
    assert kiosk.screen == "welcome"
    kiosk.find_text("Welcome")
    kiosk.scan(COFFEE)
    kiosk.wait_for_screen("shop")
    kiosk.wait_for(lambda: kiosk.app.cart.rows, what="the cart line")
    assert kiosk.app.cart.rows[0]["name"] == "Ground coffee 250 g"
    kiosk.find_text("Ground coffee 250 g")
    kiosk.screenshot("foundation-shop")
