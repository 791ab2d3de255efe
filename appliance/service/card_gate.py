"""The card gate: card is offered only when nothing earlier is unresolved and limits allow.

It runs card recovery on a worker thread at start, and again when a payment ended with
its outcome unknown, and posts CardAvailability whenever the answer changes. Screens and
the headless till read `availability` (no disk, no terminal on the main thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from appliance.core.card_payment import CardAvailability, CardRecovered
from appliance.core.devices import DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.core.offline_limits import OfflineSubmitted
from appliance.core.payment import PaymentTerminal, TerminalTotals
from appliance.core.texts import N_
from appliance.errors import ApplianceError, DeviceError, DomainError
from appliance.service.card_recovery import CardRecovery, CartTotal, CompleteSale
from appliance.store.payment_attempts import PaymentAttempts

log = logging.getLogger(__name__)

CHECKING = N_("checking an earlier card payment with the terminal")
NO_TERMINAL = N_("the card terminal is not available")
NEEDS_STAFF = N_("an earlier card payment needs a member of staff")


class CardGate:
    """Decides whether card is offered; any thread reads, one worker recovers at a time."""

    def __init__(
        self,
        journal: PaymentAttempts,
        terminal: Callable[[], PaymentTerminal | None],
        bus: EventBus,
        complete: CompleteSale,
        cart_total: CartTotal,
        *,
        limits: Callable[[], str] = lambda: "",
    ) -> None:
        self._journal = journal
        self._terminal = terminal
        self._bus = bus
        self._complete = complete
        self._cart_total = cart_total
        self._limits = limits  # why an offline limit keeps card off, or ""
        self._lock = threading.Lock()
        self._recovering = 0  # recoveries asked for and not finished
        self._unresolved: tuple[str, ...] = ()  # what needs a person, in words
        # Attempts of this run that ended unknown and are recovery's until resolved.
        self._asked: set[str] = set()
        self._needs_staff: set[str] = set()  # their references
        self._availability = CardAvailability(False, CHECKING)
        self._worker: threading.Thread | None = None
        # One recovery at a time: two asking the terminal at once could reverse one charge
        # twice, and the terminal takes one exchange at a time anyway.
        self._one_at_a_time = threading.Lock()
        bus.subscribe(DeviceHealthChanged, self._health_changed)

    @property
    def availability(self) -> CardAvailability:
        """The latest answer; thread-safe, never waits."""
        with self._lock:
            return self._availability

    @property
    def unresolved(self) -> tuple[str, ...]:
        """Attempts recovery could not resolve, each with why: for staff."""
        with self._lock:
            return self._unresolved

    def recover(self, reference: str | None = None) -> threading.Thread:
        """Resolve open attempts with the terminal on a worker; card is off meanwhile.

        Without `reference` (at start): every open attempt. With it (a payment in this run
        ended unknown): that attempt alone, so a card part another screen holds is safe.
        """
        with self._lock:
            self._recovering += 1
            if reference is not None:
                self._asked.add(reference)
            only = None if reference is None else frozenset(self._asked)
        self._refresh()
        worker = threading.Thread(
            target=self._recover, args=(only,), name="card-recovery", daemon=True
        )
        self._worker = worker
        worker.start()
        return worker

    def settled(self, reference: str) -> None:
        """Staff decided an attempt recovery could not: it no longer keeps card off."""
        with self._lock:
            self._asked.discard(reference)
            self._needs_staff.discard(reference)
            self._unresolved = tuple(
                why for why in self._unresolved if not why.startswith(f"{reference}:")
            )
        self._refresh()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running recovery; True when none is running (tests, shutdown)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return worker is None or not worker.is_alive()

    def refresh(self) -> None:
        """Work the answer out again (a terminal's health or an offline total changed)."""
        self._refresh()

    def end_of_day(self, timeout: float = 120.0) -> TerminalTotals:
        """Close the terminal's day; refused while any card attempt is unresolved. Blocking.

        An End-of-Day ends same-day reversal, so an approval still waiting for recovery or
        staff could then be undone only as a refund: first resolve, then close the day.
        """
        with self._lock:
            if self._recovering:
                raise DomainError("End-of-Day refused: card recovery is still running")
        if open_attempts := self._journal.open_attempts():
            names = ", ".join(a.reference for a in open_attempts)
            raise DomainError(f"End-of-Day refused: card payments are unresolved: {names}")
        terminal = self._terminal()
        if terminal is None:
            raise DeviceError(NO_TERMINAL)
        totals = terminal.end_of_day(timeout=timeout)
        submitted = self._journal.submitted_offline()
        log.info(
            "End-of-Day: %d payments, %d; %d offline submitted",
            totals.count,
            totals.amount,
            submitted,
        )
        self._bus.post(OfflineSubmitted(submitted))
        return totals

    def _health_changed(self, event: DeviceHealthChanged) -> None:
        """Main thread: a terminal back online may resolve what it could not be asked."""
        if event.health.kind != "payment_terminal":
            return
        with self._lock:
            retry = sorted(self._needs_staff) if not self._recovering else []
        if retry and event.health.state == "ok":
            for reference in retry:
                with self._lock:
                    self._asked.add(reference)
            self.recover(retry[0])
        else:
            self._refresh()

    def _recover(self, only: frozenset[str] | None) -> None:
        with self._one_at_a_time:
            self._recover_now(only)

    def _recover_now(self, only: frozenset[str] | None) -> None:
        needs: list[str] = []
        needing: set[str] = set()
        resolved: set[str] = set()
        terminal = self._terminal()
        try:
            if terminal is None:
                for attempt in self._journal.open_attempts():
                    if only is None or attempt.reference in only:
                        needs.append(f"{attempt.reference}: {NO_TERMINAL}")
                        needing.add(attempt.reference)
            else:
                recovery = CardRecovery(self._journal, terminal, self._complete, self._cart_total)
                for item in recovery.run(only):
                    if item.resolution == "needs_staff":
                        needs.append(f"{item.reference}: {item.detail}")
                        needing.add(item.reference)
                    else:
                        resolved.add(item.reference)
                    sale = item.sale
                    self._bus.post(
                        CardRecovered(
                            item.reference,
                            item.resolution,
                            item.detail,
                            sale.receipt_number if sale is not None else "",
                            sale.id if sale is not None else "",
                        )
                    )
        except ApplianceError as err:
            log.error("card recovery failed: %s", err)
            needs.append(f"card recovery failed: {err}")
        except Exception:
            log.exception("card recovery failed")
            needs.append("card recovery failed")
        with self._lock:
            self._recovering -= 1
            self._asked -= resolved
            self._needs_staff = needing
            self._unresolved = tuple(needs)
        self._refresh()

    def _refresh(self) -> None:
        with self._lock:
            recovering, unresolved = self._recovering, self._unresolved
        terminal = self._terminal()
        if recovering:
            answer = CardAvailability(False, CHECKING)
        elif unresolved:
            answer = CardAvailability(False, NEEDS_STAFF)
        elif terminal is None or terminal.health.state != "ok":
            answer = CardAvailability(False, NO_TERMINAL)
        elif limit := self._limits():
            answer = CardAvailability(False, limit)
        else:
            answer = CardAvailability(True)
        with self._lock:
            changed, self._availability = answer != self._availability, answer
        if changed:
            log.info("card %s", "offered" if answer.offered else f"not offered: {answer.reason}")
            self._bus.post(answer)
