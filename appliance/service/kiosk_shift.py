"""The kiosk's shift by its schedule: opened with a zero float, closed with its Z.

A self-checkout has no cashier to count a float: at `[till] kiosk_shift_open` (or at
start-up within the hours) the kiosk opens its shift with nothing in the drawer, and at
`kiosk_shift_close` it closes it uncounted and makes its Z. A supervisor may still open
or close it from the staff screens: a shift a supervisor closed within the hours stays
closed until the next opening time, and one they opened out of hours is closed at the
next closing time. A shift the kiosk was switched off over is closed at the next start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, time, timedelta, tzinfo

from appliance.core.clock import Clock
from appliance.core.events import Event, EventBus
from appliance.core.reports import ReportMade, ShiftClosed
from appliance.core.shift import ShiftOpened
from appliance.errors import ApplianceError
from appliance.store.shifts import ShiftBook

log = logging.getLogger(__name__)

KIOSK_STAFF = "kiosk"  # who the journal names for a shift the schedule opened or closed
# A customer mid-sale at closing time may finish; a cart left behind does not hold the Z longer.
BUSY_GRACE = timedelta(minutes=15)


def parse_hh_mm(text: str) -> time:
    """ "07:30" as a time of day."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _last(moment: datetime, at: time) -> datetime:
    """The latest local `at` that is not after `moment`."""
    today = datetime.combine(moment.date(), at, tzinfo=moment.tzinfo)
    return today if today <= moment else today - timedelta(days=1)


class KioskShift:
    """Keeps the kiosk's shift in step with its hours; `tick` does one step (tests call it).

    `busy` says whether a customer's sale is in progress: the close waits for it (up to
    BUSY_GRACE past the closing time), so nobody is turned away at the payment.
    """

    def __init__(
        self,
        shifts: ShiftBook,
        *,
        open_at: time,
        close_at: time,
        clock: Clock,
        tz: tzinfo | None = None,
        bus: EventBus | None = None,
        interval_seconds: float = 30.0,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        if open_at == close_at:
            raise ValueError("a kiosk's shift must open and close at different times")
        self._shifts = shifts
        self._open_at = open_at
        self._close_at = close_at
        self._clock = clock
        self._tz = tz
        self._bus = bus
        self._interval = interval_seconds
        self._busy = busy  # True while a customer's cart is in progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _local_now(self) -> datetime:
        return self._clock.now().astimezone(self._tz)  # None: the system's time zone

    def in_hours(self, moment: datetime | None = None) -> bool:
        """True between the opening and the closing time (a window may span midnight)."""
        now = moment or self._local_now()
        return _last(now, self._open_at) > _last(now, self._close_at)

    def hours_reason(self) -> str:
        """Why no sale may start now, for the checkout's shift check ("" while open)."""
        if self._shifts.current() is not None:
            return ""
        return f"the kiosk is closed; it opens at {self._open_at:%H:%M}"

    def tick(self) -> str:
        """Close an overdue shift and open one within the hours; returns what it did."""
        now = self._local_now()
        last_open, last_close = _last(now, self._open_at), _last(now, self._close_at)
        shift = self._shifts.current()
        done = []
        overdue = shift is not None and shift.opened_at < last_close
        if overdue and self._busy() and now - last_close < BUSY_GRACE:
            return "waiting for the sale in progress"
        if shift is not None and overdue:
            closing, report = self._shifts.close(None, KIOSK_STAFF)
            log.info("kiosk shift %d closed by its schedule: Z %d", shift.number, report.number)
            self._post(ShiftClosed(closing, report))
            self._post(ReportMade(report))
            shift = None
            done.append("closed")
        if shift is None and last_open > last_close:
            closed_at = self._shifts.last_closed_at()
            # A supervisor's close within these hours stands until the next opening time.
            if done or closed_at is None or closed_at < last_open:
                opened = self._shifts.open(KIOSK_STAFF, {})
                log.info("kiosk shift %d opened by its schedule", opened.number)
                self._post(ShiftOpened(opened))
                done.append("opened")
        return " and ".join(done)

    def start(self) -> None:
        """Tick now and then every `interval_seconds` on a worker thread, until `close`."""
        if self._thread is not None:
            return
        self._safe_tick()
        self._thread = threading.Thread(target=self._run, name="kiosk-shift", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the worker; safe twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._safe_tick()

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except ApplianceError as err:  # a full disk, say: tried again at the next tick
            log.error("the kiosk's shift could not follow its schedule: %s", err)

    def _post(self, event: Event) -> None:
        if self._bus is not None:
            self._bus.post(event)
