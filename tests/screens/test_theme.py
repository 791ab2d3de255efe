"""High contrast reaches 7:1 for every text; large text grows the text and the touch targets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from kivy.core.window import Window
from kivy.graphics.opengl import GL_RGB, GL_UNSIGNED_BYTE, glReadPixels
from kivy.metrics import dp, sp
from kivy.utils import get_color_from_hex

from appliance.screens.theme import HIGH_CONTRAST, LARGE_TEXT_SCALE, NORMAL, TOUCH, Theme
from tests.screens.harness import Kiosk, open_kiosk

# WCAG AAA for normal-sized text.
AAA = 7.0
# Text on its background, as the theme names them.
PAIRS = (
    ("text", "background"),
    ("primary_text", "primary"),
    ("banner_text", "banner"),
    ("danger_text", "danger"),
)
# What widgets.kv also draws text on: panels, muted hints, secondary and disabled buttons.
WIDGET_PAIRS = (
    ("text", "surface"),
    ("muted", "background"),
    ("muted", "surface"),
    ("text", "secondary"),  # a secondary button, a key: text on its fill
)
SIZES = ("text_small", "text_body", "text_large", "text_huge")
TARGETS = ("touch", "big_touch")


def luminance(rgba: Sequence[float]) -> float:
    """WCAG relative luminance of an sRGB colour (0..1 channels)."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in rgba[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: Sequence[float], second: Sequence[float]) -> float:
    """WCAG contrast ratio, 1 to 21."""
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def eight_bit(rgba: Sequence[float]) -> tuple[int, ...]:
    """A colour as 8-bit channels, so equal colours compare equal."""
    return tuple(round(channel * 255) for channel in rgba)


def palette(theme: Theme) -> dict[str, tuple[int, ...]]:
    """Every colour the theme gives, by name."""
    return {name: eight_bit(getattr(theme, name)) for name in NORMAL}


def expected(hexes: dict[str, str]) -> dict[str, tuple[int, ...]]:
    """A palette table as the theme's colours."""
    return {name: eight_bit(get_color_from_hex(value)) for name, value in hexes.items()}


def test_high_contrast_switches_the_palette_and_back() -> None:
    theme = Theme()
    assert palette(theme) == expected(NORMAL)
    theme.high_contrast = True
    assert palette(theme) == expected(HIGH_CONTRAST)
    assert palette(theme)["background"] != expected(NORMAL)["background"]
    theme.high_contrast = False
    assert palette(theme) == expected(NORMAL)


@pytest.mark.parametrize(("text", "background"), PAIRS, ids=[f"{t}-on-{b}" for t, b in PAIRS])
def test_high_contrast_text_reaches_7_to_1(text: str, background: str) -> None:
    theme = Theme(high_contrast=True)
    ratio = contrast(getattr(theme, text), getattr(theme, background))
    assert ratio >= AAA, f"{text} on {background}: {ratio:.2f}:1 in high contrast"


@pytest.mark.parametrize(
    ("text", "background"), WIDGET_PAIRS, ids=[f"{t}-on-{b}" for t, b in WIDGET_PAIRS]
)
def test_high_contrast_holds_for_what_the_widgets_draw(text: str, background: str) -> None:
    theme = Theme(high_contrast=True)
    ratio = contrast(getattr(theme, text), getattr(theme, background))
    assert ratio >= AAA, f"{text} on {background}: {ratio:.2f}:1 in high contrast"


def test_large_text_scales_text_and_touch_targets() -> None:
    theme = Theme()
    normal = {name: getattr(theme, name) for name in SIZES + TARGETS}
    assert theme.touch == pytest.approx(dp(TOUCH))
    assert theme.text_body == pytest.approx(sp(19))
    theme.large_text = True
    for name, size in normal.items():
        assert getattr(theme, name) == pytest.approx(size * LARGE_TEXT_SCALE), name
        assert getattr(theme, name) > size, name
    theme.large_text = False
    assert {name: getattr(theme, name) for name in normal} == pytest.approx(normal)


def pixel(x: int, y: int) -> tuple[int, int, int]:
    """The colour drawn at window point (x, y), read back from OpenGL."""
    Window.dispatch("on_draw")  # draw into the buffer glReadPixels reads
    data = glReadPixels(x, y, 1, 1, GL_RGB, GL_UNSIGNED_BYTE)
    return data[0], data[1], data[2]


def drawn(hex_colour: str) -> tuple[int, int, int]:
    """A theme colour as the 8-bit pixel it draws."""
    red, green, blue = get_color_from_hex(hex_colour)[:3]
    return round(red * 255), round(green * 255), round(blue * 255)


def test_the_running_app_redraws_in_the_accessible_theme(kiosk: Kiosk) -> None:
    """Switching at run time recolours what is drawn and grows text and buttons."""
    kiosk.wait_for_screen("welcome")
    start = kiosk.find_text("Start")
    font, height = start.font_size, start.height
    assert pixel(2, 2) == pytest.approx(drawn(NORMAL["background"]), abs=1)
    kiosk.app.theme.high_contrast = True
    kiosk.app.theme.large_text = True
    kiosk.pump(3)
    assert pixel(2, 2) == pytest.approx(drawn(HIGH_CONTRAST["background"]), abs=1)
    start = kiosk.find_text("Start")
    assert start.font_size == pytest.approx(font * LARGE_TEXT_SCALE)
    assert start.height > height
    assert start.height >= kiosk.app.theme.big_touch - 1


def test_a_switch_at_run_time_recolours_text_on_coloured_backgrounds(kiosk: Kiosk) -> None:
    kiosk.wait_for_screen("welcome")
    kiosk.app.theme.high_contrast = True
    kiosk.pump(3)
    start = kiosk.find_text("Start")  # a primary button: primary_text on primary
    assert eight_bit(start.background_color) == eight_bit(kiosk.app.theme.primary)
    assert eight_bit(start.color) == eight_bit(kiosk.app.theme.primary_text)


def test_the_configured_theme_is_there_from_the_first_frame(tmp_path: Path) -> None:
    """`[screen] high_contrast` and `large_text` in the configuration apply at start."""
    screen = {"high_contrast": True, "large_text": True}
    with open_kiosk(tmp_path, screen=screen) as kiosk:
        theme = kiosk.app.theme
        assert theme.high_contrast and theme.large_text
        assert palette(theme) == expected(HIGH_CONTRAST)
        assert kiosk.find_text("Welcome").font_size == pytest.approx(sp(36) * LARGE_TEXT_SCALE)
        assert pixel(2, 2) == pytest.approx(drawn(HIGH_CONTRAST["background"]), abs=1)
        start = kiosk.find_text("Start")
        assert eight_bit(start.color) == eight_bit(theme.primary_text)
