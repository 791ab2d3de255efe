"""Presenters live as long as the app that built them; this tells them when it stops."""

from __future__ import annotations

from collections.abc import Callable

from kivy.app import App


def when_app_stops(callback: Callable[[], None]) -> None:
    """Call `callback` once the running app (the one building the presenters) stops."""
    app = App.get_running_app()
    if app is not None:
        app.bind(on_stop=lambda *_args: callback())
