"""PrintQueue: receipts print on a worker thread and wait, in order, while the printer cannot.

A sale never fails because of its receipt: `submit()` returns at once; a receipt the
printer refuses (DeviceError: paper out, offline, ...) stays at the head of the queue,
is reported once with ReceiptQueued and retried every `retry_seconds` (or at once on
`retry_now()`) until it prints, when ReceiptPrinted is posted.

Nothing is persisted across restarts, on purpose: the sale itself is in the database,
so a receipt lost with the process can always be reprinted from there.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

from appliance.core.closing import OpenClosing
from appliance.core.devices import ReceiptPrinted, ReceiptPrinter, ReceiptQueued
from appliance.core.events import EventBus
from appliance.core.receipt import Receipt
from appliance.errors import DeviceError

log = logging.getLogger(__name__)

JOIN_SECONDS = 10.0  # close() waits this long for a print already under way


@dataclass(slots=True)
class _Entry:
    """A queued receipt and whether the till was told it is waiting."""

    receipt: Receipt
    announced: bool = False


class PrintQueue(OpenClosing):
    """Prints receipts in submission order on one worker thread; every method is thread-safe."""

    def __init__(self, printer: ReceiptPrinter, bus: EventBus, *, retry_seconds: float) -> None:
        self.printer = printer
        self.retry_seconds = retry_seconds
        self._bus = bus
        self._queue: deque[_Entry] = deque()
        self._wake = threading.Condition()
        self._retry = False
        self._closing = False
        self._failing = ""  # why the head of the queue did not print; "" while printing works
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Start the worker thread (once)."""
        with self._wake:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"print-queue-{self.printer.name}", daemon=True
            )
            self._thread.start()

    def submit(self, receipt: Receipt) -> None:
        """Queue `receipt` for printing; never blocks and never raises."""
        with self._wake:
            if self._closing:
                log.warning("print queue closed: receipt %s not printed", receipt.receipt_number)
                return
            entry = _Entry(receipt)
            self._queue.append(entry)
            if self._failing:
                # Behind a stuck receipt: tell the till now, not after the retry.
                self._announce(entry, self._failing)
            self._wake.notify_all()

    def retry_now(self) -> None:
        """Try the head of the queue again without waiting (paper loaded, printer back)."""
        with self._wake:
            self._retry = True
            self._wake.notify_all()

    @property
    def pending(self) -> list[Receipt]:
        """Receipts not printed yet, oldest first (the one printing now included)."""
        with self._wake:
            return [entry.receipt for entry in self._queue]

    def close(self) -> None:
        """Stop the worker after the print under way; unprinted receipts are logged. Safe twice."""
        with self._wake:
            if self._closing:
                return
            self._closing = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(JOIN_SECONDS)
        left = self.pending
        if left:
            log.warning(
                "%d receipt(s) not printed on %s: %s",
                len(left),
                self.printer.name,
                ", ".join(r.receipt_number for r in left),
            )

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._closing or bool(self._queue))
                if self._closing:
                    return
                receipt = self._queue[0].receipt
            try:
                self.printer.print_receipt(receipt)
            except DeviceError as err:
                self._failed(str(err))
                continue
            except Exception as err:
                # A bug, not the printer: retrying would block every receipt behind it.
                log.exception("receipt %s cannot be printed; dropped", receipt.receipt_number)
                self._done()
                self._bus.post(
                    ReceiptQueued(self.printer.name, receipt.receipt_number, f"not printed: {err}")
                )
                continue
            self._done()
            self._bus.post(ReceiptPrinted(self.printer.name, receipt.receipt_number))

    def _failed(self, reason: str) -> None:
        """Keep the receipt, announce what is newly waiting, and sleep until a retry."""
        with self._wake:
            if reason != self._failing:
                log.warning("%s: receipts wait: %s", self.printer.name, reason)
            self._failing = reason
            for waiting in self._queue:
                self._announce(waiting, reason)
            self._wake.wait_for(lambda: self._closing or self._retry, self.retry_seconds)
            self._retry = False

    def _done(self) -> None:
        with self._wake:
            self._queue.popleft()
            self._retry = False
            if self._failing:
                log.info("%s: printing again", self.printer.name)
            self._failing = ""

    def _announce(self, entry: _Entry, reason: str) -> None:
        """Post ReceiptQueued once per queued receipt (called with the lock held)."""
        if not entry.announced:
            entry.announced = True
            number = entry.receipt.receipt_number
            self._bus.post(ReceiptQueued(self.printer.name, number, reason))
