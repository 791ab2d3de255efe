"""`appliance run`: the main loop, its signals and what it tells systemd."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from appliance.core.events import SaleCommitted, ShutdownRequested
from appliance.service.app import Appliance
from appliance.service.notify import SystemdNotifier
from appliance.service.running import Running, running
from appliance.settings import Settings
from appliance.store.database import checkpoint

log = logging.getLogger(__name__)

# The loop wakes at least this often, so the watchdog is fed even when nothing happens.
TICK_SECONDS = 0.5


def run(
    settings: Settings,
    *,
    headless: bool,
    simulate: bool,
    notifier: SystemdNotifier | None = None,
    stop: threading.Event | None = None,
    config_path: Path | None = None,
    journald: bool = False,
) -> int:
    """Run until SIGTERM/SIGINT or `stop` is set; returns the process exit status."""
    notifier = notifier or SystemdNotifier()
    stop = stop or threading.Event()
    with running(
        settings,
        simulate=simulate,
        screen=not headless,
        config_path=config_path,
        journald=journald,
    ) as services:
        app = services.app
        app.bus.subscribe(ShutdownRequested, lambda event: stop.set())
        checkpointer = IdleCheckpointer(app)
        _install_signal_handlers(app, stop)
        if not headless:
            from appliance.screens.launch import run_screen

            run_screen(services, notifier=notifier, stop=stop, checkpointer=checkpointer)
            notifier.stopping()
            return 0
        notifier.ready(ready_status(services))
        log.info("appliance %s ready (%s)", settings.device.id, settings.database.path)
        # Waking twice per watchdog interval keeps the gap between pings under WatchdogSec
        # even when an event wakes the loop just before a ping was due.
        interval = min(TICK_SECONDS, (notifier.watchdog_interval or TICK_SECONDS) / 2)
        while not stop.is_set():
            woken = app.bus.wait(timeout=interval)
            app.bus.drain()
            if not woken:
                checkpointer.idle()
            notifier.watchdog()
        notifier.stopping()
    return 0


class IdleCheckpointer:
    """Checkpoints the WAL while the till is idle, so no sale's commit pays for it."""

    def __init__(self, app: Appliance) -> None:
        self._db = app.db
        self._pending = False
        app.bus.subscribe(SaleCommitted, self._written)

    def _written(self, _event: SaleCommitted) -> None:
        self._pending = True

    def idle(self) -> None:
        """Called when a tick passed without events."""
        if self._pending:
            self._pending = not checkpoint(self._db)


def ready_status(services: Running) -> str:
    """What READY=1 tells systemd about this start."""
    app = services.app
    return (
        f"ready: {len(app.lookup)} products, {app.ledger.count()} documents,"
        f" {len(services.devices)} devices"
    )


def _install_signal_handlers(app: Appliance, stop: threading.Event) -> None:
    """SIGTERM (systemd stop) and SIGINT (Ctrl-C) end the loop cleanly after the current work."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals can only be handled on the main thread (tests run the loop elsewhere)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        app.bus.post(ShutdownRequested(signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
