"""Every screen drawn once, hidden, before the kiosk says it is ready: the first sale draws warm.

Software GL (Mesa llvmpipe; the Pi's GPU driver alike) compiles code for each new
combination of drawing state the first time it is drawn: a scroll view's stencil clip, a
list's scissor, a texture magnified with nearest filtering, lines, blending into the window's
own buffer. A screen's first frame also lays it out at the window's size. Left to the first
sale, that was frames of 60 ms and more as the basket, the payment and the receipt came up
for the first time; drawn ahead, the first sale's frames are like any other's.

The pieces (the built screens not on show, cart rows, a QR code) are drawn in the window's
own render context, so with the window's shader into the window's buffer, and the buffers
are cleared again before the visible widgets draw: nothing of them reaches the display. They
are lent to one frame only, from Window's on_draw to its on_flip, between which no input or
clock event runs; they never join the window's widget tree, so no touch can reach them. A
screen the customer was sent to meanwhile is on show, and the deck draws it instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.factory import Factory
from kivy.graphics import ClearBuffers, ClearColor, InstructionGroup, Rectangle
from kivy.graphics.texture import Texture
from kivy.metrics import dp
from kivy.uix.screenmanager import ScreenManager
from kivy.uix.widget import Widget

log = logging.getLogger(__name__)

# Cart lines as the lists show them: the newest tinted (and, on the till, chosen), a
# discount, a weighed line without its + button, a line waiting for an age check.
SAMPLE_LINES: tuple[dict[str, Any], ...] = (
    {
        "line_id": 0,
        "name": "Ground coffee 250 g",
        "quantity": "2",
        "amount": "9,48 €",
        "unit_price": "4,99 €",
        "discount": "-0,50 €",
        "highlight": True,
        "selected": True,
    },
    {
        "line_id": 1,
        "name": "Apples",
        "quantity": "1.250 kg",
        "countable": False,
        "amount": "3,11 €",
        "unit_price": "2,49 €",
        "needs_age_check": True,
    },
)
# The row classes of the cart lists: the basket's, and the till's once its screen is loaded.
ROW_CLASSES = ("CartRow", "TillRow")
ROW_HEIGHT_DP = 64
# Screens no sale shows (the checkout closed by staff): their first draw may come cold, and
# drawn ahead their layout and GL state would be resident all day for nothing.
NOT_IN_A_SALE = frozenset({"locked", "out_of_order"})
QR_PIXELS = 4  # a QR code in miniature: an rgba texture, magnified with nearest filtering


class HiddenDraw:
    """Draws the pieces into the window in one frame, hidden; then calls `then`.

    One frame, not one a piece: frames are paced at 60 a second, and READY=1 waits for this.
    Main thread only (it draws). It stops by itself, without `then`, once `wanted()` is
    false: the app closed its window.
    """

    def __init__(
        self,
        pieces: Iterable[Widget],
        then: Callable[[], None] | None = None,
        *,
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self._pieces = list(pieces)
        self._then = then
        self._wanted = wanted
        self._group = InstructionGroup()
        self._lent: list[Widget] = []
        self.drawn: list[Widget] = []  # the pieces drawn, in order
        self.done = False

    def start(self) -> None:
        """Draw in the next frame (its layouts run first, in the same frame's clock)."""
        Window.canvas.before.add(self._group)
        Window.bind(on_draw=self._lend, on_flip=self._take_back)
        Window.canvas.ask_update()  # no frame is drawn unless the canvas asks for one

    def cancel(self) -> None:
        """Stop without drawing; `then` is not called. Safe twice."""
        self._pieces.clear()
        self._finish(call_then=False)

    # Window dispatches on_draw to the bound handlers first, then clears and draws the canvas.
    def _lend(self, *_args: Any) -> None:
        if not self._wanted():
            self.cancel()
            return
        # A screen on show now (the customer went there) is the deck's to draw.
        self._lent = [piece for piece in self._pieces if piece.parent is None]
        for piece in self._lent:
            self._group.add(piece.canvas)
        # Cleared again before the widget tree draws: no piece reaches the display.
        self._group.add(ClearColor(*Window.clearcolor))
        self._group.add(ClearBuffers(clear_color=True, clear_depth=True, clear_stencil=True))

    def _take_back(self, *_args: Any) -> None:
        self._group.clear()  # the canvases are free again, for the deck to show them
        self.drawn = self._lent
        self._finish(call_then=True)

    def _finish(self, *, call_then: bool) -> None:
        if self.done:
            return
        self.done = True
        Window.unbind(on_draw=self._lend, on_flip=self._take_back)
        self._group.clear()
        Window.canvas.before.remove(self._group)
        self._pieces = []
        log.info("%d pieces drawn ahead, hidden", len(self.drawn))
        if call_then:
            Clock.schedule_once(self._call_then, 0)

    def _call_then(self, _dt: float) -> None:
        if self._then is not None and self._wanted():
            self._then()


def hidden_screens(deck: ScreenManager) -> list[Widget]:
    """The deck's built screens a sale shows, not on show, given the deck's size as on show."""
    screens: list[Widget] = [
        screen
        for screen in deck.screens
        if screen.parent is None and screen.name not in NOT_IN_A_SALE
    ]
    for screen in screens:
        screen.pos, screen.size = deck.pos, deck.size
    return screens


def sample_rows(width: float) -> list[Widget]:
    """Cart lines in each loaded cart-list row class."""
    rows: list[Widget] = []
    for name in ROW_CLASSES:
        if name not in Factory.classes:
            continue
        for line in SAMPLE_LINES:
            row = Factory.get(name)(size_hint=(None, None), size=(width, dp(ROW_HEIGHT_DP)))
            for key, value in line.items():
                if hasattr(row, key):  # "selected" is the till's only
                    setattr(row, key, value)
            rows.append(row)
    return rows


def sample_qr() -> Widget:
    """A receipt's QR code in miniature: an rgba texture magnified with nearest filtering."""
    texture = Texture.create(size=(QR_PIXELS, QR_PIXELS), colorfmt="rgba")
    texture.mag_filter = "nearest"
    texture.blit_buffer(b"\x00\x00\x00\xff" * QR_PIXELS * QR_PIXELS, colorfmt="rgba")
    picture = Widget(size=(dp(QR_PIXELS * 16), dp(QR_PIXELS * 16)))
    with picture.canvas:
        Rectangle(texture=texture, pos=picture.pos, size=picture.size)
    return picture


def warm_up(deck: ScreenManager, then: Callable[[], None] | None = None) -> HiddenDraw:
    """Draw the deck's screens not on show, cart rows and a QR code once, hidden; then `then`.

    Stops, without `then`, if the deck leaves the window (the app stopped) meanwhile.
    """
    pieces = [*hidden_screens(deck), *sample_rows(deck.width), sample_qr()]
    drawing = HiddenDraw(pieces, then, wanted=lambda: deck.get_root_window() is not None)
    drawing.start()
    return drawing
