"""The screens are drawn once ahead, hidden, before READY=1: no pixel shows, no touch lands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from kivy.app import App
from kivy.core.window import Window
from kivy.graphics import Color, Rectangle
from kivy.graphics.opengl import GL_RGBA, GL_UNSIGNED_BYTE, glReadPixels
from kivy.tests.common import UnitTestTouch
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from appliance.screens.customer import CUSTOMER_SCREENS
from appliance.screens.warmup import NOT_IN_A_SALE, HiddenDraw
from tests.screens.harness import Kiosk, open_kiosk

RED = b"\xff\x00\x00\xff"


class Notifications:
    """Stands in for SystemdNotifier: what was said, in order."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.said: list[str] = []
        self.warmed_when_ready: bool | None = None

    def ready(self, status: str = "") -> None:
        warming = self.app.warming
        self.warmed_when_ready = warming is not None and warming.done
        self.said.append(f"READY=1 {status}")

    def watchdog(self) -> None:
        pass


def _red(size: tuple[int, int]) -> Widget:
    widget = Widget(size=size)
    with widget.canvas:
        Color(1, 0, 0, 1)
        Rectangle(pos=(0, 0), size=size)
    return widget


def _red_pixel_counter() -> tuple[list[int], Any]:
    """An on_flip handler that counts each frame's pure red pixels, and its counts."""
    counts: list[int] = []
    red = int.from_bytes(RED, "little")

    def read(*_args: Any) -> None:
        width, height = Window.size
        pixels = glReadPixels(0, 0, width, height, GL_RGBA, GL_UNSIGNED_BYTE)
        counts.append(memoryview(pixels).cast("I").tolist().count(red))

    return counts, read


def test_ready_follows_the_warm_up_of_every_screen_a_sale_shows(tmp_path: Path) -> None:
    """READY=1 is said once, after every built screen a sale shows but the one on show, cart
    rows and a QR code were drawn hidden; the screens drawn are back off the window."""
    with open_kiosk(tmp_path) as kiosk:
        app = kiosk.app
        notifications = Notifications(app)
        app.notifier = cast(Any, notifications)  # before READY=1: screens are still being built
        kiosk.wait_for(lambda: app.settled, what="the settled kiosk")
        assert notifications.said == ["READY=1 ready, screen up"]
        assert notifications.warmed_when_ready is True
        warming = app.warming
        assert warming is not None
        drawn = [p.name if isinstance(p, Screen) else type(p).__name__ for p in warming.drawn]
        assert set(CUSTOMER_SCREENS) - {"welcome", *NOT_IN_A_SALE} <= set(drawn)  # welcome on show
        assert not NOT_IN_A_SALE & set(drawn)  # the closed checkout is no part of a sale
        assert drawn.count("CartRow") == 2  # a cart with lines: the basket's rows
        assert app.deck is not None and app.deck.current == "welcome"
        assert not any(piece.parent for piece in warming.drawn if piece in app.deck.screens)


def _screen_of(widget: Widget) -> Widget | None:
    """The screen holding `widget`, if any."""
    node: Widget | None = widget
    while node is not None and not isinstance(node, Screen):
        node = node.parent
    return node


def test_a_touch_during_the_warm_up_reaches_only_the_screen_on_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Touches dispatched after the hidden draw began (in its frame, before it draws) on
    every button of the screens drawn hidden land on the screen on show, never on them."""
    on_show: list[str] = []
    elsewhere: list[str] = []
    warming_when_touched: list[bool] = []
    start = HiddenDraw.start

    def start_then_touch(drawing: HiddenDraw) -> None:
        start(drawing)
        deck = App.get_running_app().deck

        def screen_touched(screen: Screen, _touch: Any) -> None:
            (on_show if screen is deck.current_screen else elsewhere).append(screen.name)

        def pressed(button: Widget) -> None:
            if _screen_of(button) is not deck.current_screen:
                elsewhere.append(f"button {button.text!r}")

        hidden = [screen for screen in deck.screens if screen is not deck.current_screen]
        buttons = [
            widget
            for screen in hidden
            for widget in screen.walk(restrict=True)
            if isinstance(widget, ButtonBehavior)
        ]
        assert buttons
        for screen in deck.screens:
            screen.bind(on_touch_down=screen_touched)
        for button in buttons:
            button.bind(on_press=pressed)
        for button in buttons:
            touch = UnitTestTouch(*button.to_window(*button.center))
            touch.touch_down()
            touch.touch_up()
        warming_when_touched.append(not drawing.done)

    monkeypatch.setattr(HiddenDraw, "start", start_then_touch)
    with open_kiosk(tmp_path) as kiosk:
        kiosk.wait_for(lambda: kiosk.app.settled, what="the settled kiosk")
    assert warming_when_touched == [True]
    assert on_show  # the screen on show had the touches
    assert elsewhere == []


def test_a_piece_drawn_hidden_leaves_no_pixel_on_the_window(kiosk: Kiosk) -> None:
    kiosk.wait_for(lambda: kiosk.app.settled, what="the settled kiosk")
    red = _red(Window.size)
    drawing = HiddenDraw([red])
    counts, read = _red_pixel_counter()
    Window.bind(on_flip=read)
    try:
        drawing.start()
        kiosk.wait_for(lambda: drawing.done, what="the hidden draw")
        assert drawing.drawn == [red]
        assert counts and max(counts) == 0
        Window.add_widget(red)  # the same piece drawn for real: the reader does see it
        kiosk.pump(2)
        assert counts[-1] > 0.9 * Window.width * Window.height
    finally:
        Window.unbind(on_flip=read)
        Window.remove_widget(red)


def test_a_screen_shown_before_its_turn_is_drawn_by_the_deck_not_lent(kiosk: Kiosk) -> None:
    kiosk.wait_for(lambda: kiosk.app.settled, what="the settled kiosk")
    deck = kiosk.app.deck
    assert deck is not None
    shop, receipt = deck.get_screen("shop"), deck.get_screen("receipt")
    drawing = HiddenDraw([shop, receipt])
    drawing.start()
    kiosk.app.session.go("shop")  # before the first hidden frame
    kiosk.wait_for(lambda: drawing.done, what="the hidden draw")
    assert drawing.drawn == [receipt]
    kiosk.wait_for_screen("shop")
    assert shop.parent is deck and receipt.parent is None


def test_the_warm_up_stops_when_the_app_closes_its_window(tmp_path: Path) -> None:
    with open_kiosk(tmp_path) as kiosk:
        kiosk.wait_for(lambda: kiosk.app.warming is not None, what="the warm-up")
        warming = kiosk.app.warming
    assert warming is not None
    kiosk.pump(2)  # a frame of whatever comes next on the window
    assert warming.done
    assert not kiosk.app.settled  # never READY=1 for an app that is gone
