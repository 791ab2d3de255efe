"""The resident memory of a bare Kivy window: one label, the same surface and GL as the kiosk.

What the window and its GL stack cost before any screen of ours: with the headless
appliance beside it, the floor under the kiosk's own memory on this machine.
Run as `python -m bench.bare_window WIDTH HEIGHT SECONDS`; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.fresh_process import json_from_module
from bench.proc_memory import resident_kib

CHILD_TIMEOUT_S = 60.0


def bare_window_kib(size: tuple[int, int], seconds: float) -> dict[str, Any]:
    """VmRSS and its parts (KiB) of a fresh process showing one label for `seconds`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KIVY_")}
    arguments = [str(size[0]), str(size[1]), str(seconds)]
    return json_from_module("bench.bare_window", arguments, timeout_s=CHILD_TIMEOUT_S, env=env)


def python_kib() -> dict[str, Any]:
    """VmRSS and its parts (KiB) of a bare interpreter, the part both processes share."""
    waiting = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        time.sleep(0.3)  # past its start-up
        return resident_kib(waiting.pid)
    finally:
        waiting.communicate(b"")


def _show(width: int, height: int, seconds: float) -> None:
    """In the child: the kiosk's Kivy setup, one label, its frames for `seconds`, then exit."""
    import tempfile

    from appliance.screens.kivy_env import prepare_kivy
    from appliance.settings import ScreenSettings

    home = Path(tempfile.mkdtemp(prefix="bench-bare-kivy-"))
    prepare_kivy(home, ScreenSettings(width=width, height=height), offscreen=True)
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.graphics.opengl import glFlush
    from kivy.uix.label import Label

    class BareApp(App):
        def build(self) -> Label:
            Window.bind(on_flip=lambda *_args: glFlush())  # as the kiosk does offscreen
            Clock.schedule_once(self._measure, seconds)
            return Label(text="Ground coffee 250 g", font_size=32)

        def _measure(self, _dt: float) -> None:
            print(json.dumps(resident_kib(os.getpid())), flush=True)
            self.stop()

    BareApp().run()


if __name__ == "__main__":
    _show(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
