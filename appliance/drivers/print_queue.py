"""PrintQueue: receipts print on a worker thread and wait, in order, while the printer cannot.

A sale never fails because of its receipt: `submit()` returns at once. Every receipt is a
job kept in a PrintJobStore (the store's SQLite table in the appliance) from the moment it
is queued, under one id for all its retries, so a receipt waiting for paper survives a
restart and prints when the printer is back. A receipt the printer refuses before any of
it was sent (DeviceError: paper out, offline, ...) stays at the head of the queue, is
reported once with ReceiptQueued and retried every `retry_seconds` (or at once on
`retry_now()`) until it prints, when ReceiptPrinted is posted.

A job whose bytes went out but whose answer was lost (PrintOutcomeUnknownError), or that
was being sent when the appliance stopped, is never sent again by itself: it may have
printed. It becomes "uncertain" (ReceiptMayHavePrinted) and staff decide: reprint it as
a COPY, or mark it done.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

from appliance.core.closing import OpenClosing
from appliance.core.devices import (
    PrintOutcomeUnknownError,
    ReceiptMayHavePrinted,
    ReceiptPrinted,
    ReceiptPrinter,
    ReceiptQueued,
)
from appliance.core.events import EventBus
from appliance.core.print_jobs import MemoryPrintJobs, PrintJob, PrintJobState, PrintJobStore
from appliance.core.receipt import Receipt
from appliance.errors import DeviceError

log = logging.getLogger(__name__)

JOIN_SECONDS = 10.0  # close() waits this long for a print already under way
STOPPED_WHILE_PRINTING = "the appliance stopped while it was printing"


@dataclass(slots=True)
class _Entry:
    """A queued job and whether the till was told it is waiting."""

    job: PrintJob
    announced: bool = False

    @property
    def receipt(self) -> Receipt:
        return self.job.receipt


class PrintQueue(OpenClosing):
    """Prints jobs in submission order on one worker thread; every method is thread-safe.

    `jobs` keeps them (default: in memory only). A job the store cannot keep (a full
    card) is kept in memory instead: the receipt still prints, it only would not survive
    a restart.
    """

    def __init__(
        self,
        printer: ReceiptPrinter,
        bus: EventBus,
        *,
        retry_seconds: float,
        jobs: PrintJobStore | None = None,
    ) -> None:
        self.printer = printer
        self.retry_seconds = retry_seconds
        self.jobs: PrintJobStore = jobs if jobs is not None else MemoryPrintJobs()
        self._spare = MemoryPrintJobs()  # jobs the store refused to keep
        self._spare_ids: set[int] = set()
        self._bus = bus
        self._queue: deque[_Entry] = deque()
        self._wake = threading.Condition()
        self._retry = False
        self._closing = False
        self._failing = ""  # why the head of the queue did not print; "" while printing works
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Take up the jobs a previous run left, then start the worker thread (once)."""
        with self._wake:
            if self._thread is not None or self._closing:
                return
        self._resume()
        with self._wake:
            self._thread = threading.Thread(
                target=self._run, name=f"print-queue-{self.printer.name}", daemon=True
            )
            self._thread.start()

    def submit(self, receipt: Receipt) -> PrintJob | None:
        """Queue `receipt` for printing; never blocks long and never raises.

        Returns the job (its id stays the same through every retry), None after close().
        """
        with self._wake:
            if self._closing:
                log.warning("print queue closed: receipt %s not printed", receipt.receipt_number)
                return None
        job = self._keep(receipt)
        with self._wake:
            entry = _Entry(job)
            self._queue.append(entry)
            if self._failing:
                # Behind a stuck receipt: tell the till now, not after the retry.
                self._announce(entry, self._failing)
            self._wake.notify_all()
        return job

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

    @property
    def pending_jobs(self) -> list[PrintJob]:
        """The jobs not printed yet, oldest first."""
        with self._wake:
            return [entry.job for entry in self._queue]

    def close(self) -> None:
        """Stop the worker after the print under way; unprinted jobs stay kept. Safe twice."""
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

    # -- the jobs ---------------------------------------------------------------------------

    def _keep(self, receipt: Receipt) -> PrintJob:
        try:
            return self.jobs.add(self.printer.name, receipt)
        except Exception as err:  # StoreError: a full or failing card must not cost the receipt
            log.error("receipt %s kept in memory only: %s", receipt.receipt_number, err)
            job = self._spare.add(self.printer.name, receipt)
            self._spare_ids.add(job.id)
            return job

    def _set(self, job: PrintJob, state: PrintJobState, reason: str = "") -> None:
        store = self._spare if job.id in self._spare_ids else self.jobs
        try:
            store.set_state(job.id, state, reason)
        except Exception as err:  # the print goes on; only the record of it is behind
            log.error("print job %d not marked %s: %s", job.id, state, err)

    def _resume(self) -> None:
        """Queue what a previous run left: queued jobs again, printing ones as uncertain."""
        try:
            left = self.jobs.unfinished(self.printer.name)
        except Exception as err:
            log.error("%s: earlier print jobs could not be read: %s", self.printer.name, err)
            return
        for job in left:
            if job.state == "printing":
                self._uncertain(job, STOPPED_WHILE_PRINTING)
                continue
            with self._wake:
                self._queue.append(_Entry(job))
        if left:
            log.info("%s: %d print job(s) from before the restart", self.printer.name, len(left))

    def _uncertain(self, job: PrintJob, reason: str) -> None:
        number = job.receipt.receipt_number
        log.warning("receipt %s (job %d) may have printed: %s", number, job.id, reason)
        self._set(job, "uncertain", reason)
        self._bus.post(ReceiptMayHavePrinted(self.printer.name, number, job.id, reason))

    # -- the worker -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._closing or bool(self._queue))
                if self._closing:
                    return
                job = self._queue[0].job
            receipt = job.receipt
            # Kept as printing before a byte leaves: a stop from here on leaves it uncertain.
            self._set(job, "printing")
            try:
                self.printer.print_receipt(receipt)
            except PrintOutcomeUnknownError as err:
                self._done()
                self._uncertain(job, str(err))
                continue
            except DeviceError as err:
                self._set(job, "queued", str(err))  # nothing was sent: safe to try again
                self._failed(str(err))
                continue
            except Exception as err:
                # A bug, not the printer: retrying would block every receipt behind it.
                log.exception("receipt %s cannot be printed; dropped", receipt.receipt_number)
                self._set(job, "failed", f"not printed: {err}")
                self._done()
                self._bus.post(
                    ReceiptQueued(self.printer.name, receipt.receipt_number, f"not printed: {err}")
                )
                continue
            self._set(job, "printed")
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
