"""Presenters live as long as the app that built them; this tells them when it stops."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kivy.app import App

E = TypeVar("E")


def when_app_stops(callback: Callable[[], None]) -> None:
    """Call `callback` once the running app (the one building the presenters) stops."""
    app = App.get_running_app()
    if app is not None:
        app.bind(on_stop=lambda *_args: callback())


def while_app_runs(handler: Callable[[E], None]) -> Callable[[E], None]:
    """`handler`, silenced once the app stops: for events that only change what is shown.

    The service still delivers the bus's last events after the app has stopped, so that a
    card approved in that moment gets its sale. A handler that only redraws has nothing to
    draw on by then: its kv rules would look for an app that is gone, and log an error.
    """
    running = [True]
    when_app_stops(running.clear)

    def handle_while_running(event: E) -> None:
        if running:
            handler(event)

    return handle_while_running
