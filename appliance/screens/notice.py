"""A full-screen notice for a kiosk that cannot sell: not provisioned, its file refused, or
its storage failed.

The image's boot service (or the appliance itself, see `appliance.service.storage_hold`)
writes the text to a file and shows this instead of the checkout; the text is read again
every few seconds, so a fix shows without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.metrics import dp, sp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label

from appliance.screens.theme import NORMAL

log = logging.getLogger(__name__)

RELOAD_SECONDS = 3.0
UNREADABLE = "This device cannot start. Please ask staff."


def notice_text(path: Path) -> tuple[str, str]:
    """The title (first line) and the body (the rest) of the notice file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    title, _, body = (text or UNREADABLE).partition("\n")
    return title.strip(), body.strip()


class NoticeApp(App):
    """One title and its explanation, large and centred, on the whole screen."""

    title = "appliance"

    def __init__(self, path: Path, *, until: Callable[[], bool] | None = None) -> None:
        """`until`, if given, is asked at each reload; the notice closes once it says True."""
        super().__init__()
        self.path = path
        self.until = until
        self.heading = Label(font_size=sp(34), bold=True, color=NORMAL["text"], halign="center")
        self.body = Label(font_size=sp(22), color=NORMAL["muted"], halign="center")

    def build(self) -> BoxLayout:
        """Lay out the two labels and start watching the file."""
        Window.clearcolor = NORMAL["background"]
        root = BoxLayout(orientation="vertical", padding=dp(48), spacing=dp(24))
        for label in (self.heading, self.body):
            # Wrap to the screen's width; a long key path must not run off the edge.
            label.bind(width=lambda lbl, width: setattr(lbl, "text_size", (width, None)))
            root.add_widget(label)
        # The first look once the window is drawn, so whoever waits for it sees the notice.
        Clock.schedule_once(lambda _dt: self.reload(), 0)
        Clock.schedule_interval(lambda _dt: self.reload(), RELOAD_SECONDS)
        self.heading.text, self.body.text = notice_text(self.path)
        log.info("notice shown: %s", self.heading.text)
        return root

    def reload(self) -> None:
        """Show what the file says now; close when `until` says so."""
        if self.until is not None and self.until():
            self.stop()
            return
        self.heading.text, self.body.text = notice_text(self.path)
