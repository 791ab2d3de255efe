"""Tell systemd about readiness, liveness and shutdown over the sd_notify protocol."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

Sender = Callable[[str], object]


def _drop(message: str) -> bool:
    """Discard a notification; stands in when systemd-python is missing."""
    return False


@functools.cache
def _sender() -> Sender:
    """Return systemd-python's ``daemon.notify``, or a no-op if it cannot be imported."""
    # Imported lazily so the appliance still runs on dev machines without libsystemd;
    # cached so the fallback is logged once per process, not once per notifier.
    # The submodule is named in full because mypy takes the repo's systemd/ folder
    # (unit files) for a namespace package and finds no `daemon` attribute in it.
    try:
        from systemd.daemon import notify
    except ImportError:
        log.debug("systemd-python is not importable; systemd notifications are dropped")
        return _drop
    send: Sender = notify
    return send


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Return how often to send WATCHDOG=1 per sd_watchdog_enabled(3), or None if off."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    # WATCHDOG_PID is set when the watchdog belongs to a specific process; a child
    # that merely inherited the environment must not keep the parent alive.
    if pid and pid != str(os.getpid()):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        log.debug("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None
    if seconds <= 0:
        return None
    # Half the timeout, as systemd recommends, so one late iteration is not fatal.
    return seconds / 2


def _one_line(text: str) -> str:
    """Flatten ``text`` so it cannot smuggle extra KEY=value lines into a datagram."""
    return " ".join(text.splitlines())


class SystemdNotifier:
    """Sends READY/WATCHDOG/STOPPING/STATUS to systemd; silent when not under systemd.

    ``environ`` decides *whether* to notify and the watchdog interval. The datagram
    itself goes wherever the process's real ``NOTIFY_SOCKET`` points, because
    sd_notify(3) reads it with getenv(); an injected mapping cannot redirect it.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read NOTIFY_SOCKET and the watchdog settings from ``environ`` (os.environ)."""
        env = os.environ if environ is None else environ
        self._monotonic = monotonic
        self._send: Sender | None = _sender() if env.get("NOTIFY_SOCKET") else None
        self._interval = _watchdog_interval(env) if self._send is not None else None
        self._last_ping: float | None = None
        # Set at READY whether or not systemd listens: an update's health gate waits for it.
        self.ready_sent = threading.Event()

    @property
    def enabled(self) -> bool:
        """Whether a notification socket was configured."""
        return self._send is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None if disabled."""
        return self._interval

    def ready(self, status: str = "") -> None:
        """Report that start-up finished, optionally with a status line."""
        self.ready_sent.set()
        message = "READY=1"
        if status:
            message += "\nSTATUS=" + _one_line(status)
        self._notify(message)

    def watchdog(self) -> None:
        """Ping the watchdog, at most once per ``watchdog_interval``; cheap to call often."""
        if self._interval is None:
            return
        now = self._monotonic()
        if self._last_ping is not None and now - self._last_ping < self._interval:
            return
        self._last_ping = now
        self._notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Report that an orderly shutdown has begun."""
        self._notify("STOPPING=1")

    def status(self, text: str) -> None:
        """Set the free-form status line shown by ``systemctl status``."""
        self._notify("STATUS=" + _one_line(text))

    def _notify(self, message: str) -> None:
        """Send one datagram; failures are logged, never raised."""
        if self._send is None:
            return
        try:
            self._send(message)
        except OSError as exc:
            # A dead notify socket must not take the checkout down with it; if the
            # watchdog cannot be fed, systemd restarts us anyway.
            log.warning("sd_notify(%r) failed: %s", message.split("\n", 1)[0], exc)
