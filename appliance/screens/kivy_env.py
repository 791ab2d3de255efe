"""Kivy reads its environment and config once, at its first import: set them up before it."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.settings import ScreenSettings

DRM = Path("/sys/class/drm")


def drawn_offscreen() -> bool:
    """Whether the window is an offscreen surface (SDL's offscreen driver), not a display."""
    return os.environ.get("SDL_VIDEODRIVER") == "offscreen"


def connected_display_size(drm: Path = DRM) -> tuple[int, int] | None:
    """The preferred mode of the first connected display (KMS), or None when there is none.

    Under a kiosk compositor (cage) a full-screen window must be created at the display's
    size: a window made smaller and enlarged afterwards keeps its first layout.
    """
    for status in sorted(drm.glob("card*-*/status")):
        try:
            if status.read_text().strip() != "connected":
                continue
            modes = (status.parent / "modes").read_text().split()
        except OSError:
            continue
        if modes:  # the kernel lists the preferred mode first, e.g. "1280x800" or "1920x1080i"
            width, _, height = modes[0].partition("x")
            if width.isdigit() and height.rstrip("i").isdigit():
                return int(width), int(height.rstrip("i"))
    return None


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
    # SDL_mixer plays a preloaded tone from memory the moment play() is called; the
    # ffpyplayer and GStreamer providers start a decoder for every play (scan_sounds.py).
    os.environ.setdefault("KIVY_AUDIO", "sdl2")
    if offscreen:
        # Real OpenGL (Mesa) without a display: screenshots are real pixels.
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    from kivy.config import Config

    width, height = screen.width, screen.height
    if screen.fullscreen and not offscreen:
        width, height = connected_display_size() or (width, height)
    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("graphics", "fullscreen", "auto" if screen.fullscreen else "0")
    Config.set("graphics", "resizable", "1")
    # Flat rectangles and text gain nothing from multisampling, and it costs a frame about
    # half its time in fill rate (the Pi's GPU, software GL) and four samples of memory.
    Config.set("graphics", "multisamples", "0")
    Config.set("kivy", "exit_on_escape", "0")  # a customer's keyboard must not quit the till
    Config.set("kivy", "keyboard_mode", "system")  # we draw our own on-screen keyboards
    Config.set("input", "mouse", "mouse,disable_multitouch")
