"""The cash drawer as the staffed till shows it: left open, or opened with no sale or reason."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from appliance.core.devices import DrawerClosed, DrawerLeftOpen, DrawerOpened, DrawerOpening
from appliance.core.reports import tally_drawer
from appliance.screens.presenters.context import ScreenContext

log = logging.getLogger(__name__)


def unexplained(opening: DrawerOpening) -> bool:
    """An opening with no sale and no reason (by hand), as the reports count it."""
    return tally_drawer([(opening.reason, opening.staff)]).unexplained > 0


class DrawerWatch(EventDispatcher):
    """ "Drawer left open" while it is, and the openings nobody explained until staff saw them."""

    left_open = BooleanProperty(False)
    left_open_text = StringProperty("")
    unexplained_count = NumericProperty(0)  # since staff last touched "Seen"
    unexplained_text = StringProperty("")

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._seconds = 0.0
        self._last_unexplained: datetime | None = None
        ctx.bus.subscribe(DrawerLeftOpen, self._left_open)
        ctx.bus.subscribe(DrawerClosed, self._closed)
        ctx.bus.subscribe(DrawerOpened, self._opened)
        ctx.session.bind(language=lambda *_args: self._show())

    def seen(self) -> None:
        """Staff saw the flag: it goes from the till (the opening stays in the drawer log)."""
        self.unexplained_count = 0
        self._last_unexplained = None
        self._show()

    def _left_open(self, event: DrawerLeftOpen) -> None:
        log.info("drawer %s left open for %.0f s", event.device, event.seconds)
        self.left_open = True
        self._seconds = event.seconds
        self._show()
        # Said on whatever screen is up; the till keeps showing it until the drawer closes.
        self._ctx.session.say(self.left_open_text, "warning")

    def _closed(self, _event: DrawerClosed) -> None:
        self.left_open = False
        self._show()

    def _opened(self, event: DrawerOpened) -> None:
        if unexplained(event.opening):
            log.warning("drawer %s opened with no sale or reason", event.device)
            self.unexplained_count += 1
            self._last_unexplained = datetime.now().astimezone()
            self._show()

    def _show(self) -> None:
        tr = self._ctx.tr
        self.left_open_text = (
            tr._("Drawer left open for {seconds} s. Please close it.").format(
                seconds=int(self._seconds)
            )
            if self.left_open
            else ""
        )
        if self.unexplained_count and self._last_unexplained is not None:
            self.unexplained_text = tr.n_(
                "The drawer was opened with no sale or reason (last at {when}).",
                "The drawer was opened {count} times with no sale or reason (last at {when}).",
                self.unexplained_count,
            ).format(count=self.unexplained_count, when=tr.datetime(self._last_unexplained))
        else:
            self.unexplained_text = ""
