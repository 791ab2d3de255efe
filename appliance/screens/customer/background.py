"""Slow work off the main thread: searches, PIN checks, the card terminal, QR codes.

Results never touch widgets from the worker: the job posts a frozen event to the bus,
which the app drains on the main thread every frame.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


def run_in_background(name: str, job: Job) -> None:
    """Run `job` once on a new daemon thread; an exception is logged, never lost."""
    threading.Thread(target=_logged, args=(name, job), name=name, daemon=True).start()


def _logged(name: str, job: Job) -> None:
    try:
        job()
    except Exception:  # a bug in a job must show in the log, not vanish with its thread
        log.exception("%s failed", name)


class LatestOnly:
    """Runs the newest job on one worker thread; jobs submitted meanwhile replace each other.

    Typing "chocolate" starts one search, not nine: while a search runs, only the last
    letter's search waits. The thread ends when nothing waits, so none outlives its use.
    Thread-safe.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._waiting: Job | None = None
        self._running = False

    def submit(self, job: Job) -> None:
        """Run `job` after the one running now, instead of any other still waiting."""
        with self._lock:
            self._waiting = job
            if self._running:
                return
            self._running = True
        run_in_background(self._name, self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                job, self._waiting = self._waiting, None
                if job is None:
                    self._running = False
                    return
            _logged(self._name, job)
