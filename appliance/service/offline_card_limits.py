"""Offline card limits at run time: the journal's offline usage, cached for the card gate.

The card gate asks `reason()` whenever it works its answer out, on whatever thread that
is, so `reason()` never reads the disk: it judges the cached usage against the limits at
the current time. The cache is read from the journal on this object's own worker thread:
at start, after every offline approval (CardAnswered with `offline`), after recovery
resolved an attempt (CardRecovered), and after an End-of-Day has marked the offline
approvals submitted (OfflineSubmitted, or a call to `reload()`). Each load then asks the
gate to refresh, and a timer asks again when the oldest approval reaches the age limit,
so card goes off on time with no payment to trigger it.

An offline approval above the per-payment cap cannot be refused (the terminal decided
offline by itself and the card is charged): it is logged as over the cap, counted in
`over_cap` (this run only) and in the total like any other.

Threads: the event handlers run on the main loop; `reason`, `usage`, `reload` and
`refresh` are safe from any thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime

from appliance.core.card_payment import CardAnswered, CardRecovered
from appliance.core.clock import Clock, SystemClock
from appliance.core.events import EventBus
from appliance.core.offline_limits import (
    OfflineLimits,
    OfflineSubmitted,
    age_limit_at,
    offline_block,
    over_cap,
)
from appliance.core.texts import N_
from appliance.errors import ApplianceError
from appliance.settings import PaymentSettings
from appliance.store.payment_attempts import OfflineUsage, PaymentAttempts

log = logging.getLogger(__name__)

CHECKING = N_("Card payments are paused: checking offline card payments")
UNREADABLE = N_("Card payments are paused: offline card payments could not be checked")
FIRST_LOAD_WAIT_S = 5.0  # a worker asking before the first load waits this long for it


def limits_from(settings: PaymentSettings) -> OfflineLimits:
    """The offline limits of the [payments] table."""
    return OfflineLimits.of(
        settings.offline_max_per_payment,
        settings.offline_max_total,
        settings.offline_max_age_hours,
    )


class OfflineCardLimits:
    """Caches the journal's offline usage and says whether it keeps card off."""

    def __init__(
        self,
        journal: PaymentAttempts,
        limits: OfflineLimits,
        bus: EventBus,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._journal = journal
        self.limits = limits
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._usage: OfflineUsage | None = None  # None until loaded, or unreadable
        self._failed = False
        self._loaded = threading.Event()  # the first load is over, read or not
        self._over_cap = 0
        self._refresh: Callable[[], None] = lambda: None
        self._timer: threading.Timer | None = None
        self._closed = False
        self._main = threading.get_ident()  # the thread that must never wait for the disk
        self._asked: list[Future[None]] = []  # reloads asked for and not started yet
        self._working = False  # a worker is running; it ends when nothing is asked
        bus.subscribe(CardAnswered, self._answered)
        bus.subscribe(CardRecovered, self._changed)
        bus.subscribe(OfflineSubmitted, self._changed)

    def attach(self, refresh: Callable[[], None]) -> None:
        """What to call when the answer may have changed (the card gate's `refresh`)."""
        self._refresh = refresh

    @property
    def usage(self) -> OfflineUsage | None:
        """The offline usage last read; None before the first read, or when it failed."""
        with self._lock:
            return self._usage

    @property
    def over_cap(self) -> int:
        """Offline approvals above the per-payment cap seen in this run."""
        with self._lock:
            return self._over_cap

    def reason(self) -> str:
        """Why offline approvals keep card off now, or ""; any thread, never reads the disk.

        Before the first load a worker thread waits for it (briefly); the main loop does not
        wait and hears "checking" until the load's own refresh.
        """
        if not self._loaded.is_set() and threading.get_ident() != self._main:
            self._loaded.wait(FIRST_LOAD_WAIT_S)
        with self._lock:
            usage, failed = self._usage, self._failed
        if usage is None:
            return UNREADABLE if failed else CHECKING
        return offline_block(usage, self.limits, self._clock.now())

    def reload(self) -> Future[None]:
        """Read the usage again on the worker, then refresh the gate; any thread.

        Call it after an End-of-Day has marked the offline approvals submitted.
        """
        done: Future[None] = Future()
        with self._lock:
            self._asked.append(done)
            start, self._working = not self._working, True
        if start:
            threading.Thread(target=self._work, name="offline-cards", daemon=True).start()
        return done

    def refresh(self) -> None:
        """Ask the gate to work its answer out again (the age limit may have passed)."""
        self._refresh()

    def close(self) -> None:
        """Stop the age timer; safe twice. A worker ends by itself once its reads are done."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _changed(self, _event: CardRecovered | OfflineSubmitted) -> None:
        """Main loop: recovery or an End-of-Day changed the journal; read it again."""
        self.reload()

    def _answered(self, event: CardAnswered) -> None:
        """Main loop: an offline approval adds to the usage; read it again off this thread."""
        result = event.result
        if result is None or not result.offline or result.outcome != "approved":
            return
        amount = result.amount if result.amount is not None else event.request.amount
        if over_cap(amount, self.limits):
            with self._lock:
                self._over_cap += 1
            # It stands: the terminal charged the card before anyone could say no.
            log.warning(
                "card payment %s of %d approved offline above the per-payment limit of %d",
                event.request.merchant_reference,
                amount,
                self.limits.max_per_payment,
            )
        self.reload()

    # -- the worker thread ---------------------------------------------------------------

    def _work(self) -> None:
        # Every reload asked for before a read began is answered by that read: a burst of
        # approvals costs one or two reads, and no thread is left once nothing is asked.
        while True:
            with self._lock:
                batch, self._asked = self._asked, []
                if not batch:
                    self._working = False
                    return
            try:
                self._load()
            except Exception:  # never leave `_working` set with nobody to answer
                log.exception("offline card limits not worked out")
            for done in batch:
                done.set_result(None)

    def _load(self) -> None:
        try:
            usage: OfflineUsage | None = self._journal.offline_usage()
        except ApplianceError as err:
            log.error("offline card payments not read: %s", err)
            usage = None
        except Exception:
            log.exception("offline card payments not read")
            usage = None
        with self._lock:
            if usage is not None or self._usage is None:
                # A failed read keeps the last figures: they are still the best known.
                self._usage, self._failed = usage, usage is None
            known = self._usage
        self._loaded.set()
        if known is not None:
            log.debug("offline card payments: %d, %d", known.count, known.amount)
            self._arm(age_limit_at(known, self.limits))
        self._refresh()

    def _arm(self, when: datetime | None) -> None:
        """Refresh the gate again when the age limit falls due."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if when is None or self._closed:
                return
            delay = max(0.0, (when - self._clock.now()).total_seconds()) + 0.5
            timer = threading.Timer(delay, self.refresh)
            timer.name, timer.daemon = "offline-cards-age", True
            self._timer = timer
        timer.start()
