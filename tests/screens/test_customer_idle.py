"""A customer who walks away: asked "Are you still there?", then the cart is cleared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kivy.core.window import Window

from appliance.screens.customer.still_there import StillThereDialog
from tests.screens.customer_steps import COFFEE, scan_and_wait
from tests.screens.harness import Kiosk, open_kiosk

IDLE_SECONDS = 5  # the least the settings allow
STILL_THERE_SECONDS = 3


@pytest.fixture
def impatient_kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    """A kiosk that asks after 5 s without a touch and gives up 3 s later."""
    screen = {"idle_seconds": IDLE_SECONDS, "still_there_seconds": STILL_THERE_SECONDS}
    with open_kiosk(tmp_path, screen=screen) as harness:
        yield harness


def dialogs() -> list[StillThereDialog]:
    """The "Are you still there?" dialogs on the window."""
    return [w for w in Window.children if isinstance(w, StillThereDialog)]


def test_an_idle_sale_is_asked_about_then_cleared(impatient_kiosk: Kiosk) -> None:
    kiosk = impatient_kiosk
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.wait_for_screen("shop")
    idle = kiosk.app.idle
    kiosk.wait_for(lambda: idle.asking, timeout=IDLE_SECONDS + 10, what="the question")
    kiosk.find_text("Are you still there?")
    kiosk.screenshot("customer-idle-asking")
    kiosk.tap_text("Yes, I'm here")
    kiosk.wait_for(lambda: not dialogs(), what="the dialog closed")
    assert kiosk.screen == "shop" and len(kiosk.app.cart.rows) == 1

    kiosk.app.session.set_language("de")
    kiosk.wait_for(lambda: idle.asking, timeout=IDLE_SECONDS + 10, what="the question again")
    first = idle.seconds_left
    assert 0 < first <= STILL_THERE_SECONDS
    kiosk.wait_for(lambda: idle.seconds_left < first, what="the countdown")
    assert kiosk.screen == "shop"  # still counting down
    kiosk.wait_for_screen("welcome", timeout=STILL_THERE_SECONDS + 10)
    kiosk.wait_for(lambda: not dialogs(), what="the dialog closed")
    assert kiosk.services.app.checkout.cart.is_empty
    assert kiosk.app.session.language == "en"
