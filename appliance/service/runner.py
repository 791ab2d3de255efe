"""`appliance run`: the main loop, its signals and what it tells systemd."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from appliance.core.events import SaleCommitted, ShutdownRequested
from appliance.service.after_sale import AfterSale
from appliance.service.app import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.service.notify import SystemdNotifier
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
    if not headless:
        # The Kivy checkout screen is not part of this build yet: keep selling headless.
        log.warning("no checkout screen in this build; running headless")
    app = Appliance.open(settings)
    try:
        if simulate and (added := seed_demo_catalog(app.catalog, settings.store)):
            log.info("simulate: added %d demo products", added)
        app.lookup.refresh()  # before READY=1, so the first scan is as fast as any other
        devices = app.open_devices(simulate=simulate)
        after_sale = AfterSale(app, devices)
        after_sale.open()
        hub = None
        if settings.hub is not None:
            # paho loads only when a hub is configured: a stand-alone till starts faster.
            from appliance.service.hub_connection import HubConnection

            hub = HubConnection(
                app, devices, settings.hub, config_path=config_path, journald=journald
            )
            hub.open()
        app.bus.subscribe(ShutdownRequested, lambda event: stop.set())
        checkpointer = IdleCheckpointer(app)
        _install_signal_handlers(app, stop)
        notifier.ready(
            f"ready: {len(app.lookup)} products, {app.ledger.count()} documents,"
            f" {len(devices)} devices"
        )
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
        log.info("appliance stopping")
        if hub is not None:
            hub.close()
        after_sale.close()
        app.close_devices()
        app.bus.drain()  # events of the last kick and print (the drawer log) before closing
    finally:
        app.close()
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


def _install_signal_handlers(app: Appliance, stop: threading.Event) -> None:
    """SIGTERM (systemd stop) and SIGINT (Ctrl-C) end the loop cleanly after the current work."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals can only be handled on the main thread (tests run the loop elsewhere)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        app.bus.post(ShutdownRequested(signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
