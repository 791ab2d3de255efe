"""Checks on a drawn screen: real pixels, nothing off the window, no text cut, big targets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kivy.core.text import Label as CoreLabel
from kivy.core.text.markup import MarkupLabel as CoreMarkupLabel
from kivy.core.window import Window
from kivy.graphics.opengl import GL_RGB, GL_UNSIGNED_BYTE, glReadPixels
from kivy.metrics import dp
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.label import Label
from kivy.uix.screenmanager import ScreenManager
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget
from PIL import Image

from appliance.screens.widgets import TextKeyboard
from tests.screens.harness import ARTIFACTS, Kiosk

# A drawn screen has text, edges and antialiasing: many colours, no single one everywhere.
# A thank-you line on a plain tablet background is still about 1 % of the pixels.
MIN_COLOURS = 16
MAX_DOMINANT_SHARE = 0.997
# Sub-pixel layout rounding is not clipping.
TOLERANCE_PX = 1.0
MIN_TOUCH_DP = 48


@dataclass(frozen=True, slots=True)
class Pixels:
    """What a screenshot holds: how many colours, and the share of the commonest one."""

    colours: int
    dominant_share: float

    @property
    def blank(self) -> bool:
        """Nothing drawn but a background (or a single flat fill)."""
        return self.colours < MIN_COLOURS or self.dominant_share > MAX_DOMINANT_SHARE


def capture(kiosk: Kiosk, name: str) -> Path:
    """Save the window as tests/artifacts/<name>.png, drawn just before it is read."""
    ARTIFACTS.mkdir(exist_ok=True)
    kiosk.pump(2)
    # glReadPixels reads the back buffer, which is undefined after a flip: draw into it first.
    Window.dispatch("on_draw")
    width, height = Window.size
    data = glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE)
    path = ARTIFACTS / f"{name}.png"
    image = Image.frombytes("RGB", (width, height), data).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    image.save(path, compress_level=1)  # Kivy's own PNG writer takes a quarter second
    return path


def pixels_of(png: Path) -> Pixels:
    """Count the colours of a screenshot read back from its PNG."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        total = rgb.width * rgb.height
        counts = rgb.getcolors(maxcolors=total) or []
    commonest = max((count for count, _colour in counts), default=total)
    return Pixels(colours=len(counts), dominant_share=commonest / total)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem on a screen, named by the widget's text so a reader can find it."""

    kind: str  # "off-window", "outside-parent", "text-cut", "small-target", "narrow-key"
    widget: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.widget!r} {self.detail}"


def shown_roots() -> Iterator[Widget]:
    """The current screen of every ScreenManager on the window, and every overlay."""
    for top in list(Window.children):
        yield from _shown_under(top)


def _shown_under(widget: Widget) -> Iterator[Widget]:
    if isinstance(widget, ScreenManager):
        if widget.current_screen is not None:
            yield widget.current_screen
        return
    yield widget


def visible_widgets() -> Iterator[Widget]:
    """Widgets a person can see: on a shown screen, not transparent, not collapsed."""
    for root in shown_roots():
        yield from _walk_visible(root)


def _walk_visible(widget: Widget) -> Iterator[Widget]:
    if widget.opacity <= 0.01 or widget.width <= 0 or widget.height <= 0:
        return  # hidden on purpose (opacity 0) or collapsed to nothing: children too
    yield widget
    children = widget.children
    if isinstance(widget, ScreenManager):
        children = [widget.current_screen] if widget.current_screen is not None else []
    for child in reversed(children):
        yield from _walk_visible(child)


def label_text(widget: Widget) -> str:
    """The text a finding names the widget by (its class when it has none)."""
    text = getattr(widget, "text", "")
    return text if text else type(widget).__name__


def scroller_of(widget: Widget) -> ScrollView | None:
    """The ScrollView (or RecycleView) the widget scrolls in, if any."""
    node = widget.parent
    while node is not None and node is not Window:
        if isinstance(node, ScrollView):
            return node
        node = node.parent
    return None


def inside_keyboard(widget: Widget) -> bool:
    """A key of an on-screen text keyboard: narrower keys are the design."""
    node = widget.parent
    while node is not None and node is not Window:
        if isinstance(node, TextKeyboard):
            return True
        node = node.parent
    return False


def window_box(widget: Widget) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the widget in window coordinates."""
    left, bottom = widget.to_window(widget.x, widget.y)
    right, top = widget.to_window(widget.right, widget.top)
    return left, bottom, right, top


def _overlaps(box: tuple[float, float, float, float], other: Widget) -> bool:
    left, bottom, right, top = box
    o_left, o_bottom, o_right, o_top = window_box(other)
    return left < o_right and right > o_left and bottom < o_top and top > o_bottom


def needed_size(label: Label) -> tuple[float, float]:
    """The size the label's text needs at its wrap width, however high its box is."""
    options: dict[str, Any] = {name: getattr(label, name) for name in Label._font_properties}
    wrap_width = label.text_size[0]
    options["text_size"] = (wrap_width, None)
    core = (CoreMarkupLabel if label.markup else CoreLabel)(**options)
    core.refresh()
    texture = core.texture
    if texture is None:
        return 0.0, 0.0
    return float(texture.width), float(texture.height)


def check_label(label: Label) -> Finding | None:
    """The text fits the label's box; shortened or line-limited labels cut text on purpose."""
    if not label.text.strip() or label.shorten or label.max_lines:
        return None
    width, height = needed_size(label)
    if width > label.width + TOLERANCE_PX or height > label.height + TOLERANCE_PX:
        return Finding(
            "text-cut",
            label.text,
            f"needs {width:.0f}x{height:.0f} px, box is {label.width:.0f}x{label.height:.0f} px",
        )
    return None


def check_on_window(widget: Widget) -> Finding | None:
    """The widget's box lies inside the window."""
    left, bottom, right, top = window_box(widget)
    width, height = Window.size
    if (
        left < -TOLERANCE_PX
        or bottom < -TOLERANCE_PX
        or right > width + TOLERANCE_PX
        or top > height + TOLERANCE_PX
    ):
        return Finding(
            "off-window",
            label_text(widget),
            f"spans x {left:.0f}..{right:.0f}, y {bottom:.0f}..{top:.0f} "
            f"in a {width}x{height} window",
        )
    return None


def check_inside_parents(widget: Widget) -> Finding | None:
    """The widget lies inside every layout around it; sticking out, it is drawn over or under."""
    box = window_box(widget)
    node = widget.parent
    while node is not None and node is not Window and not isinstance(node, ScreenManager):
        if isinstance(node, ScrollView):
            return None  # its content is bigger than the view on purpose: scrolling is the design
        outer = window_box(node)
        if (
            box[0] < outer[0] - TOLERANCE_PX
            or box[1] < outer[1] - TOLERANCE_PX
            or box[2] > outer[2] + TOLERANCE_PX
            or box[3] > outer[3] + TOLERANCE_PX
        ):
            return Finding(
                "outside-parent",
                label_text(widget),
                f"spans x {box[0]:.0f}..{box[2]:.0f}, y {box[1]:.0f}..{box[3]:.0f} outside its "
                f"{type(node).__name__} at x {outer[0]:.0f}..{outer[2]:.0f}, "
                f"y {outer[1]:.0f}..{outer[3]:.0f}",
            )
        node = node.parent
    return None


def check_target(widget: Widget) -> Finding | None:
    """A button is at least 48 dp each way; keyboard keys may be narrower, never lower."""
    least = dp(MIN_TOUCH_DP) - TOLERANCE_PX
    size = f"{widget.width:.0f}x{widget.height:.0f} px, least {dp(MIN_TOUCH_DP):.0f} px"
    if widget.height < least:
        return Finding("small-target", label_text(widget), f"is {size}")
    if widget.width < least:
        kind = "narrow-key" if inside_keyboard(widget) else "small-target"
        return Finding(kind, label_text(widget), f"is {size}")
    return None


def check_screen() -> list[Finding]:
    """Every check on every visible widget of the screen on show."""
    findings: list[Finding | None] = []
    for widget in visible_widgets():
        scroller = scroller_of(widget)
        if isinstance(widget, Label | ButtonBehavior):
            # Off the window only counts outside scroll views (scrolling there is the design);
            # sticking out of its own layout is a bug wherever it is.
            off = check_on_window(widget) if scroller is None else None
            findings.append(off or check_inside_parents(widget))
        if scroller is not None and not _overlaps(window_box(widget), scroller):
            continue  # scrolled out of view
        if isinstance(widget, Label):
            findings.append(check_label(widget))
        if isinstance(widget, ButtonBehavior):
            findings.append(check_target(widget))
    return [finding for finding in findings if finding is not None]
