"""The ScreenManager that builds each screen the first time it is shown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kivy.clock import Clock
from kivy.uix.screenmanager import NoTransition, ScreenManager

from appliance.screens.registry import built_ahead, screen_class

log = logging.getLogger(__name__)


class ScreenDeck(ScreenManager):
    """Shows screens by name; builds them lazily so the first frame comes fast."""

    def __init__(self, mode: str, **kwargs: Any) -> None:
        kwargs.setdefault("transition", NoTransition())  # instant: a checkout must feel quick
        super().__init__(**kwargs)
        self.ahead = built_ahead(mode)
        self._pending = list(self.ahead)

    def show(self, name: str) -> None:
        """Make `name` the visible screen, building it if needed."""
        self.ensure(name)
        self.current = name

    def ensure(self, name: str) -> None:
        """Build the screen `name` if it is not built yet."""
        if not self.has_screen(name):
            self.add_widget(screen_class(name)(name=name))
        if name in self._pending:
            self._pending.remove(name)

    def build_rest_when_idle(self, then: Callable[[], None] | None = None) -> None:
        """Build the mode's other screens one per frame, so a switch to them never waits for
        kv; call `then` once they are built."""
        if self.get_root_window() is None:
            return  # the app closed its window: a screen built now binds to a stopped app
        if self._pending:
            self.ensure(self._pending[0])
            Clock.schedule_once(lambda _dt: self.build_rest_when_idle(then), 0)
        elif then is not None:
            then()
