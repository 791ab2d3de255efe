"""Kivy offscreen for tests: must run before the first `import kivy` in the process."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from appliance.screens.kivy_env import prepare_kivy
from appliance.settings import ScreenSettings

KIVY_HOME = Path(tempfile.gettempdir()) / f"appliance-test-kivy-{os.getuid()}"


def prepare_offscreen_kivy() -> None:
    """Real OpenGL through Mesa, no display; Kivy's home in a temporary folder."""
    os.environ["KIVY_HOME"] = str(KIVY_HOME)
    # The offscreen surface keeps the size the window is created with, and a resize does
    # not grow it: create it big enough for every layout (800x480, 1280x800, 800x1280).
    prepare_kivy(KIVY_HOME, ScreenSettings(width=1280, height=1280), offscreen=True)
