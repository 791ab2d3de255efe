"""`appliance run`: the main loop, its signals and what it tells systemd."""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Protocol

from peewee import DatabaseError

from appliance.core.events import SaleCommitted, ShutdownRequested
from appliance.service.assembly import Appliance
from appliance.service.lifecycle import Running, running
from appliance.service.notify import SystemdNotifier
from appliance.service.storage_hold import (
    OPENING_ERRORS,
    NoticeScreen,
    hold,
    opening_fault,
    store_opener,
)
from appliance.settings import Settings
from appliance.store.database import checkpoint

log = logging.getLogger(__name__)

# The loop wakes at least this often, so the watchdog is fed even when nothing happens.
TICK_SECONDS = 0.5


class Checkpointer(Protocol):
    """Does housekeeping while the till is idle."""

    def idle(self) -> None:
        """Called when a tick passed without events."""
        ...


class FrontEnd(Protocol):
    """A screen that runs the checkout on the main thread instead of the headless loop.

    It returns when `stop` is set or its window closes; it tells systemd READY=1 itself,
    with `ready_status()`, once it can take a sale.
    """

    def __call__(
        self,
        services: Running,
        *,
        notifier: SystemdNotifier,
        stop: threading.Event,
        checkpointer: Checkpointer,
        ready_status: Callable[[], str],
    ) -> None: ...


def run(
    settings: Settings,
    *,
    simulate: bool,
    front_end: FrontEnd | None = None,
    notice: NoticeScreen | None = None,
    notifier: SystemdNotifier | None = None,
    stop: threading.Event | None = None,
    config_path: Path | None = None,
    journald: bool = False,
) -> int:
    """Run until SIGTERM/SIGINT or `stop` is set; returns the process exit status.

    Without a `front_end` the appliance runs headless: this loop drains the bus. `notice`
    shows "out of order" while a failed data partition keeps the store from opening.
    """
    notifier = notifier or SystemdNotifier()
    stop = stop or threading.Event()
    # Before the store opens: a rollback puts the database snapshot back first.
    update = None
    if settings.update.slots:
        from appliance.service.updates import prepare_update

        update = prepare_update(settings, on_reboot=stop.set, ready_sent=notifier.ready_sent)
        if update.boot.mode == "reboot":
            update.boot.slots.reboot()  # the gate failed in this try boot: back to the old slot
            return 0
    with ExitStack() as stack:
        try:
            services = stack.enter_context(
                running(
                    settings,
                    simulate=simulate,
                    screen=front_end is not None,
                    config_path=config_path,
                    journald=journald,
                    update=update,
                )
            )
        except OPENING_ERRORS as err:
            # A store that cannot open because its partition is full or failing: wait for
            # it with a notice, rather than exit into a restart (and reboot) loop.
            watch = opening_fault(err, settings)
            if watch is None:
                raise
            _install_stop_signals(stop)
            return hold(watch, notifier, stop, store_opens=store_opener(settings), screen=notice)
        _serve(services, front_end, notifier, stop)
    return 0


def _serve(
    services: Running,
    front_end: FrontEnd | None,
    notifier: SystemdNotifier,
    stop: threading.Event,
) -> None:
    """Run the checkout on the open appliance until `stop` is set or the window closes."""
    app = services.app
    app.bus.subscribe(ShutdownRequested, lambda event: stop.set())
    checkpointer = IdleCheckpointer(app)
    _install_signal_handlers(app, stop)
    if front_end is not None:
        front_end(
            services,
            notifier=notifier,
            stop=stop,
            checkpointer=checkpointer,
            ready_status=lambda: ready_status(services),
        )
        notifier.stopping()
        return
    notifier.ready(ready_status(services))
    settings = app.settings
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


class IdleCheckpointer:
    """Checkpoints the WAL while the till is idle, so no sale's commit pays for it.

    A checkpoint that fails (a full or failing disk) is logged once and left for later: the
    committed sales are safe in the WAL, and housekeeping never takes the appliance down.
    """

    def __init__(self, app: Appliance) -> None:
        self._db = app.db
        self._storage = app.storage
        self._pending = False
        self._failing = False
        app.bus.subscribe(SaleCommitted, self._written)

    def _written(self, _event: SaleCommitted) -> None:
        self._pending = True

    def idle(self) -> None:
        """Called when a tick passed without events."""
        if not self._pending or self._storage.status.failed:
            return  # a failed disk is watched elsewhere; retrying each tick would only log
        try:
            self._pending = not checkpoint(self._db)
        except (DatabaseError, sqlite3.Error) as err:
            if not self._failing:
                log.error("WAL checkpoint failed, the sales stay in the WAL: %s", err)
            self._failing = True
            return
        if self._failing:
            log.info("WAL checkpoint works again")
        self._failing = False


def ready_status(services: Running) -> str:
    """What READY=1 tells systemd about this start."""
    app = services.app
    held = f", sales held: {app.update_hold}" if app.update_hold else ""
    return (
        f"ready: {len(app.lookup)} products, {app.ledger.count()} documents,"
        f" {len(services.devices)} devices{held}"
    )


def _install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop` (before the appliance is open: no bus to tell)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: stop.set())


def _install_signal_handlers(app: Appliance, stop: threading.Event) -> None:
    """SIGTERM (systemd stop) and SIGINT (Ctrl-C) end the loop cleanly after the current work."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals can only be handled on the main thread (tests run the loop elsewhere)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        app.bus.post(ShutdownRequested(signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
