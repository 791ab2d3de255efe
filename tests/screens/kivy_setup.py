"""Kivy offscreen for tests: must run before the first `import kivy` in the process."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from appliance.screens.kivy_env import prepare_kivy
from appliance.settings import ScreenSettings


def kivy_home() -> Path:
    """Kivy's home for this test process: one per pytest-xdist worker.

    Kivy creates its folders at import without `exist_ok`; two workers sharing one home
    raced to create them and one failed its collection.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return Path(tempfile.gettempdir()) / f"appliance-test-kivy-{os.getuid()}-{worker}"


def prepare_offscreen_kivy() -> None:
    """Real OpenGL through Mesa, no display; Kivy's home in a temporary folder."""
    home = kivy_home()
    os.environ["KIVY_HOME"] = str(home)
    # The offscreen surface keeps the size the window is created with, and a resize does
    # not grow it: create it big enough for every layout (800x480, 1280x800, 800x1280).
    prepare_kivy(home, ScreenSettings(width=1280, height=1280), offscreen=True)
