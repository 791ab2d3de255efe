"""Kivy reads its environment and config once, at its first import: set them up before it."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.settings import ScreenSettings


def drawn_offscreen() -> bool:
    """Whether the window is an offscreen surface (SDL's offscreen driver), not a display."""
    return os.environ.get("SDL_VIDEODRIVER") == "offscreen"


def prepare_kivy(home: Path, screen: ScreenSettings, *, offscreen: bool = False) -> None:
    """Point Kivy at our state directory, our logging and the configured window size.

    Call before anything imports kivy; later calls only change the window size settings.
    """
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(home))
    os.environ["KIVY_NO_ARGS"] = "1"  # Kivy would otherwise parse (and exit on) our argv
    os.environ["KIVY_NO_FILELOG"] = "1"  # logs go to journald through Python logging
    os.environ["KIVY_LOG_MODE"] = "PYTHON"
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    if offscreen:
        # Real OpenGL (Mesa) without a display: screenshots are real pixels.
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    from kivy.config import Config

    Config.set("graphics", "width", str(screen.width))
    Config.set("graphics", "height", str(screen.height))
    Config.set("graphics", "fullscreen", "auto" if screen.fullscreen else "0")
    Config.set("graphics", "resizable", "1")
    # Flat rectangles and text gain nothing from multisampling, and it costs a frame about
    # half its time in fill rate (the Pi's GPU, software GL) and four samples of memory.
    Config.set("graphics", "multisamples", "0")
    Config.set("kivy", "exit_on_escape", "0")  # a customer's keyboard must not quit the till
    Config.set("kivy", "keyboard_mode", "system")  # we draw our own on-screen keyboards
    Config.set("input", "mouse", "mouse,disable_multitouch")
