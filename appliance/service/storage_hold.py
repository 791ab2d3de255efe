"""Starting on a data partition that takes no writes: say so, wait for it, never loop.

A restart does not empty a full card, and a reboot does not make a failing one writable,
so exiting would only turn the fault into a restart loop (and, through the unit's start
limit, a reboot loop). Instead the appliance tells systemd it is up with the reason as
its status, keeps the watchdog fed, shows "out of order" on the screen, and looks at the
partition again every few seconds. Once a test write succeeds it exits with EX_TEMPFAIL,
and systemd starts it afresh on the partition that works again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from peewee import DatabaseError

from appliance.core.events import EventBus
from appliance.core.storage import StorageStatus
from appliance.errors import StorageFaultError
from appliance.service.notify import SystemdNotifier
from appliance.service.storage_watch import StorageWatch, probe_write
from appliance.settings import Settings
from appliance.store.database import open_database
from appliance.store.storage_faults import storage_fault

log = logging.getLogger(__name__)

EX_TEMPFAIL = 75  # sysexits.h: try again later; the unit's Restart=on-failure does
OPENING_ERRORS = (DatabaseError, sqlite3.Error, StorageFaultError, OSError)
TITLE = "This checkout is out of order"
BODY = "Please ask a member of staff for help."
STOP_LOOK_S = 0.1  # how often a held start looks whether it was asked to stop

# Shows a notice (its text asked for again at each look) until `look` says True; main thread.
NoticeScreen = Callable[[Callable[[], str], Callable[[], bool]], None]


def opening_fault(err: BaseException, settings: Settings) -> StorageWatch | None:
    """A watch holding the storage fault that kept the store from opening; None if another error.

    SQLite says only "unable to open database file" on a read-only partition, so a test
    write decides whether the partition is to blame.
    """
    folder = Path(settings.database.path).parent
    found = storage_fault(err)
    problem = probe_write(folder) if folder.is_dir() else None
    if problem is not None:
        state, detail = problem
    elif found is not None:
        state, detail = found[0], str(found[1])
    else:
        return None
    database = settings.database
    watch = StorageWatch(
        folder, database.reserve_bytes, EventBus(), interval_seconds=database.storage_check_seconds
    )
    watch.fault(state, f"the store could not be opened: {detail}")
    watch.check()
    return watch


def hold(
    watch: StorageWatch,
    notifier: SystemdNotifier,
    stop: threading.Event,
    *,
    store_opens: Callable[[], bool],
    screen: NoticeScreen | None = None,
) -> int:
    """Wait until the partition takes writes again (EX_TEMPFAIL) or `stop` is set (0).

    With `screen`, it shows the notice and calls its `look` on its own clock; headless, this
    thread looks every interval.
    """
    log.error("the appliance waits for its storage: %s", watch.status.describe())
    back = threading.Event()
    announced = threading.Event()

    def look() -> bool:
        """Look again; True once the partition works or a stop was asked for."""
        if not announced.is_set():  # with a screen: once the notice is up
            notifier.ready(f"out of order: {watch.status.describe()}")
            announced.set()
        notifier.watchdog()
        if watch.check().state in ("ok", "low") and store_opens():
            log.warning("storage works again: starting afresh")
            back.set()
        return back.is_set() or stop.is_set()

    if screen is not None:
        screen(lambda: notice_text(watch.status), look)
    else:
        interval = min(watch.interval_seconds, notifier.watchdog_interval or watch.interval_seconds)
        while not look() and not _sleep_unless_stopped(stop, interval):
            pass
    notifier.stopping()
    return EX_TEMPFAIL if back.is_set() else 0


def _sleep_unless_stopped(stop: threading.Event, seconds: float) -> bool:
    """Sleep up to `seconds`, looking at `stop` often; whether it was set.

    Not `stop.wait()`: the SIGTERM handler sets `stop` on this same thread, and Event.set
    takes the lock Event.wait holds at its start and end, so a signal landing there
    deadlocks the process. is_set() takes no lock, and sleep is interrupted by the signal.
    """
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, STOP_LOOK_S))
    return stop.is_set()


def store_opener(settings: Settings) -> Callable[[], bool]:
    """Whether the database opens now: the partition may work while the file still cannot."""

    def store_opens() -> bool:
        try:
            open_database(settings.database.path).close()
        except OPENING_ERRORS as err:
            log.error("the store still cannot be opened: %s", err)
            return False
        return True

    return store_opens


def notice_text(status: StorageStatus) -> str:
    """The notice: a title for the customer, then the reason for staff."""
    return f"{TITLE}\n{BODY}\n\n{status.describe()}"
