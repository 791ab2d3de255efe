"""Work a hub worker does on an interval, between messages, on its own thread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.core.clock import Clock

log = logging.getLogger(__name__)

Periodic = tuple[float, Callable[[], object]]  # (every N seconds, work; its result unused)


@dataclass(slots=True)
class _Entry:
    every: float
    run: Callable[[], object]
    due: float = 0.0  # monotonic seconds; 0: at the first chance


class PeriodicWork:
    """Runs each callable every so many seconds when asked; one thread only."""

    def __init__(self, work: Sequence[Periodic], clock: Clock) -> None:
        self._clock = clock
        self._entries = [_Entry(every, run) for every, run in work]

    def seconds_left(self) -> float | None:
        """Seconds until the next work is due (None: there is none)."""
        if not self._entries:
            return None
        return max(0.0, min(entry.due for entry in self._entries) - self._clock.monotonic())

    def run_due(self) -> None:
        """Run what is due; a failure is logged and never ends the caller."""
        now = self._clock.monotonic()
        for entry in self._entries:
            if now < entry.due:
                continue
            entry.due = now + entry.every
            try:
                entry.run()
            except Exception:
                log.exception("periodic %r failed", entry.run)
