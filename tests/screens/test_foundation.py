"""The kiosk app starts on the real window and a scan reaches the cart on screen."""

from __future__ import annotations

import gc
from pathlib import Path

from appliance.screens.customer import CUSTOMER_SCREENS
from appliance.screens.staff import STAFF_SCREENS
from tests.screens.harness import Kiosk, open_kiosk

COFFEE = "4006381333931"
CHOCOLATE = "7613289024044"


def test_a_scan_on_the_welcome_screen_starts_the_sale(kiosk: Kiosk) -> None:
    assert kiosk.screen == "welcome"
    kiosk.find_text("Welcome")
    kiosk.scan(COFFEE)
    kiosk.wait_for_screen("shop")
    kiosk.wait_for(lambda: kiosk.app.cart.rows, what="the cart line")
    assert kiosk.app.cart.rows[0]["name"] == "Ground coffee 250 g"
    kiosk.find_text("Ground coffee 250 g")
    kiosk.screenshot("foundation-shop")


def test_the_heap_settles_once_the_kiosk_screens_are_built(tmp_path: Path) -> None:
    """Built ahead: the customer screens; the kiosk's objects are then frozen, and thawed
    when the app stops (a full collection walking them was a 100 ms frame mid-sale)."""
    gc.unfreeze()
    with open_kiosk(tmp_path) as kiosk:
        deck = kiosk.app.deck
        assert deck is not None and deck.ahead == list(CUSTOMER_SCREENS)
        kiosk.wait_for(lambda: gc.get_freeze_count() > 0, what="the settled heap")
        assert all(deck.has_screen(name) for name in CUSTOMER_SCREENS)
        assert not any(deck.has_screen(name) for name in STAFF_SCREENS)  # built when shown
        kiosk.app.session.go("staff_login")  # a member of staff at a kiosk
        kiosk.wait_for_screen("staff_login")
    assert gc.get_freeze_count() == 0


def _anonymous_kib() -> int:
    """This process's resident anonymous memory (the C heap included), from /proc."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


def test_frames_drawn_offscreen_do_not_pile_up_in_the_gl_driver(kiosk: Kiosk) -> None:
    """An offscreen swap does nothing: unless each frame is handed to GL, software GL kept
    every frame's draw commands (a megabyte a frame while a scroll bar faded out)."""
    from kivy.core.window import Window
    from kivy.graphics import Color, Rectangle
    from kivy.uix.widget import Widget

    kiosk.wait_for(lambda: kiosk.app.settled, what="the settled kiosk")
    fading = Widget(size=Window.size)
    with fading.canvas:
        colour = Color(0.2, 0.4, 0.6, 1)
        Rectangle(size=Window.size)
    Window.add_widget(fading)
    try:
        kiosk.pump(5)
        before = _anonymous_kib()
        for frame in range(60):  # a second of animation: every frame redraws the window
            colour.a = 1 - frame / 60
            kiosk.pump()
        grown_mib = (_anonymous_kib() - before) / 1024
    finally:
        Window.remove_widget(fading)
    assert grown_mib < 8, f"{grown_mib:.1f} MiB more after 60 frames"


def test_a_new_cart_line_moves_no_other_row(kiosk: Kiosk) -> None:
    """Rows hang from the list's top: adding one lays out and redraws only the new row."""
    from appliance.screens.row_list import RowList

    kiosk.scan(COFFEE)
    kiosk.wait_for_screen("shop")
    kiosk.wait_for(lambda: len(kiosk.app.cart.rows) == 1, what="the first line")
    kiosk.pump(3)
    cart_list = next(w for w in kiosk.widgets() if isinstance(w, RowList) and kiosk.visible(w))
    first = next(view for view in cart_list.layout_manager.children if view.name)
    where = tuple(first.pos)
    moves: list[tuple[float, float]] = []
    first.bind(pos=lambda _view, pos: moves.append(tuple(pos)))
    kiosk.scan(CHOCOLATE)
    kiosk.wait_for(lambda: len(kiosk.app.cart.rows) == 2, what="the second line")
    kiosk.pump(3)
    assert len(cart_list.layout_manager.children) == 2
    assert first.name == "Ground coffee 250 g" and tuple(first.pos) == where
    assert moves == []
    top = cart_list.to_window(*cart_list.pos)[1] + cart_list.height
    assert first.to_window(*first.pos)[1] + first.height == top  # the first row is on top
