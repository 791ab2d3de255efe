"""One worker thread that runs queued steps in order, and a retry check when none come.

Any thread (paho's included) may queue a step; only the worker runs them, one at a time,
so the state its owner keeps needs no lock. When no step came for `every` seconds the
worker runs `retry`. A step that raises is logged (on the owner's logger) and the next one
runs. When it stops, the worker closes its peewee connection (one per thread) to `db`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from peewee import Database

Step = Callable[[], object]


class StepWorker:
    """A named daemon thread draining a queue of steps; `put` and `wait_idle` from any thread."""

    def __init__(
        self, name: str, db: Database, retry: Step, every: float, log: logging.Logger
    ) -> None:
        self._name = name
        self._db = db
        self._retry = retry
        self._every = every
        self._log = log
        self._inbox: queue.SimpleQueue[Step | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._pending_lock = threading.Condition()

    def start(self) -> None:
        """Start the thread (again, once stopped); nothing when it runs."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish queued steps and stop the thread; safe twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._inbox.put(None)
            thread.join(timeout)

    def put(self, step: Step) -> None:
        """Queue a step for the thread."""
        with self._pending_lock:
            self._pending += 1
        self._inbox.put(step)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued step has run; False when `timeout` passed first."""
        with self._pending_lock:
            return self._pending_lock.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        try:
            while True:
                try:
                    step = self._inbox.get(timeout=self._every)
                except queue.Empty:
                    self._retry_safely()
                    continue
                if step is None:
                    break
                try:
                    step()
                except Exception:
                    self._log.exception("%s step failed", self._name)
                finally:
                    with self._pending_lock:
                        self._pending -= 1
                        self._pending_lock.notify_all()
        finally:
            if not self._db.is_closed():
                self._db.close()  # peewee's per-thread connection of this worker

    def _retry_safely(self) -> None:
        try:
            self._retry()
        except Exception:
            self._log.exception("%s retry failed", self._name)
