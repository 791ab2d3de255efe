"""A worker thread that keeps a device connected: open, serve, and reopen after a loss."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class ReconnectingWorker:
    """Runs `session()` in a thread; when it raises, waits (backoff with jitter) and retries.

    `session` opens the transport, serves until the device is lost or `stopping` is set,
    and returns or raises. `on_lost(error)` reports a loss. A device unplugged and plugged
    back in is therefore picked up without restarting the appliance.
    """

    def __init__(
        self,
        name: str,
        session: Callable[[threading.Event], None],
        on_lost: Callable[[BaseException], None],
        *,
        first_delay: float = 0.2,
        max_delay: float = 5.0,
    ) -> None:
        self._name = name
        self._session = session
        self._on_lost = on_lost
        self._first_delay = first_delay
        self._max_delay = max_delay
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the session to end and wait for the thread; safe to call twice."""
        self.stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self._first_delay
        while not self.stopping.is_set():
            try:
                self._session(self.stopping)
                delay = self._first_delay
            except Exception as err:  # any loss: report it and try again
                if self.stopping.is_set():
                    break
                log.debug("%s: session ended: %s", self._name, err)
                self._on_lost(err)
                delay = min(self._max_delay, delay * 2)
            # Jitter keeps many devices from retrying in lock-step after a hub outage.
            self.stopping.wait(delay * random.uniform(0.5, 1.0))
