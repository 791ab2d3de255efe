"""When an update may reboot the kiosk: never in a sale or with a payment in doubt.

Outside a maintenance window the kiosk must also have been idle a while; with a window
configured, the reboot waits for the window (the store is closed then) instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time

_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Local times between which a reboot is welcome; may run past midnight (23:00-01:00)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> MaintenanceWindow:
        """ "02:00-04:00" → the window; ValueError otherwise."""
        found = _WINDOW.match(text)
        if found is None:
            raise ValueError(f"expected local times like 02:00-04:00, got {text!r}")
        start = time(int(found[1]), int(found[2]))
        end = time(int(found[3]), int(found[4]))
        if start == end:
            raise ValueError(f"{text!r}: the window ends where it starts")
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        """Whether a local time of day lies in the window (start included, end not)."""
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


@dataclass(frozen=True, slots=True)
class RebootPermit:
    """Says why the kiosk may not reboot now, or "" when it may; called from any thread.

    Each callable is read on the updater's thread, so it must be thread-safe and quick.
    """

    sale_open: Callable[[], bool]  # a cart with items, or a sale being stored
    payment_in_doubt: Callable[[], bool]  # a card attempt not settled (recovery pending)
    idle_for: Callable[[], float]  # seconds since the last input at the kiosk
    local_now: Callable[[], datetime]  # the store's local time
    idle_s: float = 60.0
    window: MaintenanceWindow | None = None

    def __call__(self) -> str:
        """ "" when a reboot is fine now, else why not."""
        if self.sale_open():
            return "a sale is open"
        if self.payment_in_doubt():
            return "a card payment is in doubt"
        if self.window is not None:
            if not self.window.contains(self.local_now().time()):
                start, end = self.window.start, self.window.end
                return f"outside the maintenance window {start:%H:%M}-{end:%H:%M}"
            return ""
        idle = self.idle_for()
        if idle < self.idle_s:
            return f"the kiosk was in use {idle:.0f} s ago (waits for {self.idle_s:g} s idle)"
        return ""
