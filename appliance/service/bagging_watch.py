"""The bagging scale, read on a thread of its own: each new settled weight goes to the bus.

The scale answers within about a second, so it is never asked on the main loop. The
thread asks it every POLL_SECONDS and posts BaggingWeighed when a stable weight differs
from the last one posted, or is the first since motion or a fault (a scale that stopped
answering suspends the check through its device health; its first weight back resumes it).
"""

from __future__ import annotations

import logging
import threading

from appliance.core.bagging import BaggingWeighed
from appliance.core.closing import Closing
from appliance.core.events import EventBus
from appliance.core.scale import Scale, StableWeight

log = logging.getLogger(__name__)

# A POS scale settles in well under a second; asking four times a second sees a bag put
# down promptly and keeps the serial line far from busy.
POLL_SECONDS = 0.25


class BaggingWatch(Closing):
    """Polls the bagging scale on its thread; start() once, close() safe twice."""

    def __init__(self, scale: Scale, bus: EventBus, *, interval: float = POLL_SECONDS) -> None:
        self._scale = scale
        self._bus = bus
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bagging-scale", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop polling and wait for the thread; safe twice."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(5.0)

    # --- the polling thread ---

    def _run(self) -> None:
        last: int | None = None
        while not self._stop.is_set():
            try:
                reading = self._scale.weigh()
            except Exception:  # the port says it never raises; a bug must not end the watch
                log.exception("the bagging scale could not be read")
                reading = None
            if not isinstance(reading, StableWeight):
                last = None  # after motion or a fault, the next settled weight is news again
            elif reading.grams != last:
                last = reading.grams
                self._bus.post(BaggingWeighed(reading.grams))
            self._stop.wait(self._interval)
