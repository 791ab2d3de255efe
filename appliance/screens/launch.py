"""Start the checkout screen on the main thread; Kivy is imported only from here on."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.service.lifecycle import Running
from appliance.service.main_loop import Checkpointer
from appliance.service.notify import SystemdNotifier
from appliance.settings import Settings


def kivy_home_for(database_path: str) -> Path:
    """Kivy's own config and cache live beside the database, on the writable data partition."""
    return Path(database_path).resolve().parent / "kivy"


def run_screen(
    services: Running,
    *,
    notifier: SystemdNotifier,
    stop: threading.Event,
    checkpointer: Checkpointer,
    ready_status: Callable[[], str],
) -> None:
    """Open the window and run the checkout until `stop` is set or the window closes."""
    from appliance.screens.kivy_env import prepare_kivy

    settings = services.app.settings
    prepare_kivy(
        kivy_home_for(settings.database.path),
        settings.screen,
        offscreen=os.environ.get("APPLIANCE_OFFSCREEN") == "1",
    )
    from appliance.screens.app import KioskApp

    KioskApp(
        services,
        notifier=notifier,
        stop=stop,
        checkpointer=checkpointer,
        ready_status=ready_status,
    ).run()


def show_notice(settings: Settings, text: Callable[[], str], look: Callable[[], bool]) -> None:
    """Show a notice full-screen until `look` says True; Kivy's home is a temporary folder.

    For an appliance whose data partition (where Kivy's home would be) takes no writes.
    """
    from appliance.screens.kivy_env import prepare_kivy

    home = Path(tempfile.mkdtemp(prefix="appliance-notice-"))
    prepare_kivy(home, settings.screen, offscreen=os.environ.get("APPLIANCE_OFFSCREEN") == "1")
    from appliance.screens.notice import NoticeApp

    notice = home / "notice.txt"
    notice.write_text(text(), encoding="utf-8")

    def tick() -> bool:
        done = look()
        notice.write_text(text(), encoding="utf-8")
        return done

    NoticeApp(notice, until=tick).run()
