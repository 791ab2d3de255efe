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
import time
from collections import deque
from dataclasses import dataclass

from appliance.core.closing import OpenClosing
from appliance.core.devices import (
    ReceiptMayHavePrinted,
    ReceiptPrinted,
    ReceiptPrinter,
    ReceiptQueued,
)
from appliance.core.events import EventBus
from appliance.core.print_jobs import MemoryPrintJobs, PrintJob, PrintJobState, PrintJobStore
from appliance.core.receipt import Receipt
from appliance.errors import DeviceError, PrintOutcomeUnknownError

log = logging.getLogger(__name__)

JOIN_SECONDS = 10.0  # close() waits this long for a print already under way
STOPPED_WHILE_PRINTING = "the appliance stopped while it was printing"


@dataclass(slots=True)
class _Entry:
    """A queued receipt, its kept job once the worker saved it, and whether the till knows."""

    receipt: Receipt
    job: PrintJob | None = None
    announced: bool = False


class PrintQueue(OpenClosing):
    """Prints jobs in submission order on one worker thread; every method is thread-safe.

    `jobs` keeps them (default: in memory only). The worker saves each new job before
    anything else (submit() runs on the main thread, which never waits for the disk). A
    job the store cannot keep (a full card) is kept in memory instead: the receipt still
    prints, it only would not survive a restart.
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
        self._retry_at = 0.0  # monotonic: when a stuck head is tried again by itself
        self._closing = False
        self._failing = ""  # why the head of the queue did not print; "" while printing works
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Start the worker thread (once); it first takes up the jobs a previous run left."""
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

    @property
    def pending_jobs(self) -> list[PrintJob]:
        """The kept jobs not printed yet, oldest first (one just submitted may not be yet)."""
        with self._wake:
            return [entry.job for entry in self._queue if entry.job is not None]

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
        if thread is None or not thread.is_alive():
            self._save_new()  # submitted since the worker's last look: kept for the next run
        left = self.pending
        if left:
            log.warning(
                "%d receipt(s) not printed on %s: %s",
                len(left),
                self.printer.name,
                ", ".join(r.receipt_number for r in left),
            )

    # -- the jobs ---------------------------------------------------------------------------

    def _save_new(self) -> None:
        """Keep every entry not kept yet, in order (off the main thread, or at close)."""
        with self._wake:
            new = [entry for entry in self._queue if entry.job is None]
        for entry in new:
            job = self._keep(entry.receipt)
            with self._wake:
                entry.job = job

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
        """Queue what a previous run left, ahead of anything new: queued jobs again,
        jobs that were printing as uncertain (they may have printed)."""
        try:
            left = self.jobs.unfinished(self.printer.name)
        except Exception as err:
            log.error("%s: earlier print jobs could not be read: %s", self.printer.name, err)
            return
        waiting = []
        for job in left:
            if job.state == "printing":
                self._uncertain(job, STOPPED_WHILE_PRINTING)
            else:
                waiting.append(_Entry(job.receipt, job))
        with self._wake:
            self._queue.extendleft(reversed(waiting))
        if left:
            log.info("%s: %d print job(s) from before the restart", self.printer.name, len(left))

    def _uncertain(self, job: PrintJob, reason: str) -> None:
        number = job.receipt.receipt_number
        log.warning("receipt %s (job %d) may have printed: %s", number, job.id, reason)
        self._set(job, "uncertain", reason)
        self._bus.post(ReceiptMayHavePrinted(self.printer.name, number, job.id, reason))

    # -- the worker -------------------------------------------------------------------------

    def _run(self) -> None:
        self._resume()
        while True:
            self._save_new()
            with self._wake:
                if self._closing:
                    return
                if any(entry.job is None for entry in self._queue):
                    continue  # submitted meanwhile: kept first
                if not self._queue:
                    self._wake.wait()
                    continue
                wait = self._retry_at - time.monotonic()
                if self._failing and not self._retry and wait > 0:
                    self._wake.wait(wait)  # until the retry, a submit, retry_now() or close()
                    continue
                self._retry = False
                job = self._queue[0].job
            assert job is not None
            self._print(job)

    def _print(self, job: PrintJob) -> None:
        receipt = job.receipt
        # Kept as printing before a byte leaves: a stop from here on leaves it uncertain.
        self._set(job, "printing")
        try:
            self.printer.print_receipt(receipt)
        except PrintOutcomeUnknownError as err:
            self._done()
            self._uncertain(job, str(err))
            return
        except DeviceError as err:
            self._set(job, "queued", str(err))  # nothing was sent: safe to try again
            self._failed(str(err))
            return
        except Exception as err:
            # A bug, not the printer: retrying would block every receipt behind it.
            log.exception("receipt %s cannot be printed; dropped", receipt.receipt_number)
            self._set(job, "failed", f"not printed: {err}")
            self._done()
            self._bus.post(
                ReceiptQueued(self.printer.name, receipt.receipt_number, f"not printed: {err}")
            )
            return
        self._set(job, "printed")
        self._done()
        self._bus.post(ReceiptPrinted(self.printer.name, receipt.receipt_number))

    def _failed(self, reason: str) -> None:
        """Keep the receipt, announce what is newly waiting, and try again after a while."""
        with self._wake:
            if reason != self._failing:
                log.warning("%s: receipts wait: %s", self.printer.name, reason)
            self._failing = reason
            for waiting in self._queue:
                self._announce(waiting, reason)
            self._retry_at = time.monotonic() + self.retry_seconds

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
