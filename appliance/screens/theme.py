"""Colours and text sizes the `.kv` files bind to; high contrast and large text switch them."""

from __future__ import annotations

from typing import Any

from kivy.event import EventDispatcher
from kivy.metrics import dp, sp
from kivy.properties import BooleanProperty, ColorProperty, NumericProperty

# Two palettes: the normal one, and one with at least 7:1 contrast for every text (WCAG AAA).
NORMAL = {
    "background": "#F4F6F8",
    "surface": "#FFFFFF",
    "text": "#1B1F24",
    "muted": "#56606B",
    "primary": "#0B5FFF",
    "primary_text": "#FFFFFF",
    "danger": "#B3261E",
    "danger_text": "#FFFFFF",
    "success": "#1E7B34",
    "warning": "#8A5300",
    "line": "#D5DBE1",
    "secondary": "#D5DBE1",
    "banner": "#1B1F24",
    "banner_text": "#FFFFFF",
}
HIGH_CONTRAST = {
    "background": "#000000",
    "surface": "#000000",
    "text": "#FFFFFF",
    "muted": "#FFFFFF",
    "primary": "#FFE500",
    "primary_text": "#000000",
    "danger": "#FF8A80",
    "danger_text": "#000000",
    "success": "#7CFF8A",
    "warning": "#FFE500",
    "line": "#FFFFFF",
    "secondary": "#262626",  # white text on it is 15:1; a white key on black needs a fill
    "banner": "#FFFFFF",
    "banner_text": "#000000",
}
LARGE_TEXT_SCALE = 1.3
# Touch targets: 48 dp is the least a finger hits reliably; the main actions get more.
TOUCH = 48
BIG_TOUCH = 72


class Theme(EventDispatcher):
    """What every view draws with; change `high_contrast` or `large_text` and all follow."""

    high_contrast = BooleanProperty(False)
    large_text = BooleanProperty(False)

    background = ColorProperty(NORMAL["background"])
    surface = ColorProperty(NORMAL["surface"])
    text = ColorProperty(NORMAL["text"])
    muted = ColorProperty(NORMAL["muted"])
    primary = ColorProperty(NORMAL["primary"])
    primary_text = ColorProperty(NORMAL["primary_text"])
    danger = ColorProperty(NORMAL["danger"])
    danger_text = ColorProperty(NORMAL["danger_text"])
    success = ColorProperty(NORMAL["success"])
    warning = ColorProperty(NORMAL["warning"])
    line = ColorProperty(NORMAL["line"])
    secondary = ColorProperty(NORMAL["secondary"])
    banner = ColorProperty(NORMAL["banner"])
    banner_text = ColorProperty(NORMAL["banner_text"])

    scale = NumericProperty(1.0)
    text_small = NumericProperty(sp(15))
    text_body = NumericProperty(sp(19))
    text_large = NumericProperty(sp(25))
    text_huge = NumericProperty(sp(36))
    touch = NumericProperty(dp(TOUCH))
    big_touch = NumericProperty(dp(BIG_TOUCH))
    padding = NumericProperty(dp(12))

    def __init__(self, *, high_contrast: bool = False, large_text: bool = False) -> None:
        super().__init__()
        self.high_contrast = high_contrast
        self.large_text = large_text
        self._apply_palette()
        self._apply_scale()

    def on_high_contrast(self, *_args: Any) -> None:
        self._apply_palette()

    def on_large_text(self, *_args: Any) -> None:
        self._apply_scale()

    def _apply_palette(self) -> None:
        for name, value in (HIGH_CONTRAST if self.high_contrast else NORMAL).items():
            setattr(self, name, value)

    def _apply_scale(self) -> None:
        self.scale = LARGE_TEXT_SCALE if self.large_text else 1.0
        self.text_small = sp(15) * self.scale
        self.text_body = sp(19) * self.scale
        self.text_large = sp(25) * self.scale
        self.text_huge = sp(36) * self.scale
        # Larger text needs larger buttons, or the words would not fit in them.
        self.touch = dp(TOUCH) * self.scale
        self.big_touch = dp(BIG_TOUCH) * self.scale
