"""What follows a committed sale: the receipt, the drawer for cash, and the drawer log.

None of it can fail the sale: the sale is already durable when SaleCommitted arrives.
A receipt that cannot print is kept in the store's print queue and retried (across a
restart too); a drawer that cannot open is logged. Reprints of any receipt or report
are marked COPY; a print job that may have printed waits for staff to reprint or settle it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from peewee import DatabaseError

from appliance.core.card_balance import CardDebitResult
from appliance.core.card_payment import CardAnswered
from appliance.core.devices import DrawerOpened, DrawerOpening
from appliance.core.events import SaleCommitted
from appliance.core.print_jobs import PrintJob, PrintJobState
from appliance.core.receipt import Receipt, receipt_for
from appliance.core.report_receipt import report_receipt
from appliance.core.reports import ReportMade, TillReport
from appliance.core.sale import Sale
from appliance.device_settings import EscposPrinterSettings
from appliance.drivers.manager import DeviceManager
from appliance.drivers.print_queue import PrintQueue
from appliance.errors import DeviceError, StoreError
from appliance.service.assembly import Appliance
from appliance.store.drawer_log import DrawerLog
from appliance.store.print_jobs import PrintJobs

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETRY_SECONDS = 15.0
KEPT_CARD_SLIPS = 32  # a reprint of a recent card sale still has its slip


class AfterSale:
    """Prints receipts, opens the drawer for cash and logs every opening.

    Its handlers run on the main thread; the kick and the log row run on the drawer's worker.
    """

    def __init__(
        self, app: Appliance, devices: DeviceManager, *, print_every_sale: bool = True
    ) -> None:
        self._app = app
        self._print_every_sale = print_every_sale
        self._drawer = devices.drawer
        self._drawer_log = DrawerLog(app.db)
        self.print_jobs = PrintJobs(app.db)
        printer = devices.printer
        table = self._printer_table(printer.name) if printer is not None else None
        self._header = table.header if table else ()
        self._footer = table.footer if table else ("Thank you!",)
        retry = table.retry_seconds if table else DEFAULT_RETRY_SECONDS
        self._queue = (
            PrintQueue(printer, app.bus, retry_seconds=retry, jobs=self.print_jobs)
            if printer
            else None
        )
        # A kick blocks for the pulse (about 0.1 s), a log row for the disk: never on the
        # main thread. One worker keeps each opening's row after its kick.
        self._kicks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drawer-kick")
        self._closed = False  # the worker has stopped: set and read on the main thread
        # The card terminal's slip, by the attempt's reference, until its sale's receipt prints.
        self._card_slips: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._slips_lock = threading.Lock()
        self._refused_slips: set[tuple[str, ...]] = set()  # the terminal printed these
        self._accept_card_slips(devices)
        app.bus.subscribe(CardAnswered, self._card_answered)
        app.bus.subscribe(SaleCommitted, self._committed)
        app.bus.subscribe(DrawerOpened, self._opened)
        # A report made with no one at the screen (a kiosk's scheduled close) prints itself;
        # the staff screens print theirs as staff ask.
        app.bus.subscribe(ReportMade, self._report_made)

    def open(self) -> None:
        """Start the print queue's worker; jobs a previous run left print (or wait) first."""
        if self._queue is not None:
            try:
                self.print_jobs.prune()
            except StoreError as err:  # old jobs only take room; printing goes on
                log.warning("old print jobs not pruned: %s", err)
            self._queue.open()

    def close(self) -> None:
        """Stop the queue (unprinted receipts are logged) and finish a running kick.

        The last kick's DrawerOpened is posted as the worker stops; the service drains the
        bus once more after this, and that opening is then logged on the main thread.
        """
        if self._queue is not None:
            self._queue.close()
        self._closed = True
        self._kicks.shutdown(wait=True)

    def _on_worker(self, work: Callable[[T], None], arg: T) -> bool:
        """Hand `work` to the drawer's worker; False once the worker has stopped.

        A stopped executor raises "cannot schedule new futures after shutdown", and the
        event that asked (the last opening, drained at shutdown) would be lost with it.
        """
        if self._closed:
            return False
        self._kicks.submit(work, arg)
        return True

    def _printer_table(self, name: str) -> EscposPrinterSettings | None:
        tables = dict(self._app.settings.devices)
        if self._app.lab is not None:
            tables |= self._app.lab.settings
        table = tables.get(name)
        return table if isinstance(table, EscposPrinterSettings) else None

    def _card_answered(self, event: CardAnswered) -> None:
        result = event.result
        if result is None or result.outcome != "approved" or not result.receipt_lines:
            return
        slip = result.receipt_lines
        with self._slips_lock:
            refused = [lines for lines in self._refused_slips if set(lines) <= set(slip)]
            self._refused_slips.difference_update(refused)
        if not refused:
            self._card_slips[event.request.merchant_reference] = slip
            while len(self._card_slips) > KEPT_CARD_SLIPS:
                self._card_slips.popitem(last=False)

    def _accept_card_slips(self, devices: DeviceManager) -> None:
        """The terminal hands its slip to our printer only while the printer can print it.

        The slip is printed with the sale's receipt. A printer out of paper or offline makes
        the terminal hear "cannot print" (ZVT 84 xx), so it prints the slip itself.
        """
        from appliance.drivers.zvt.terminal import ZvtTerminal

        terminal, printer = devices.terminal, devices.printer
        if printer is None or not isinstance(terminal, ZvtTerminal):
            return

        def can_print(lines: tuple[str, ...]) -> bool:
            """The terminal's thread: take the slip while the printer can print it."""
            health = printer.health
            if health.state == "ok" or health.reason == "paper near end":
                return True
            with self._slips_lock:  # the terminal prints this one itself: never twice
                self._refused_slips.add(lines)
            return False

        terminal.receipt_printer = can_print

    def _slip_of(self, sale: Sale) -> tuple[str, ...]:
        """The card slips of the sale's card tenders (kept for a reprint too)."""
        slips = [self._card_slips.get(t.reference, ()) for t in sale.tenders if t.kind == "card"]
        return tuple(line for slip in slips for line in slip)

    def _committed(self, event: SaleCommitted) -> None:
        # The event carries the document: reading it back would wait for the disk in a frame.
        sale = event.sale
        if sale is None:  # a poster forgot SaleCommitted.of(sale)
            log.error("committed sale %s came without its document", event.sale_id)
            return
        if self._print_every_sale:
            self._print(sale)
        if self._drawer is not None and any(t.kind == "cash" for t in sale.tenders):
            opening = DrawerOpening("sale", reference=sale.id)
            if not self._on_worker(self._kick, opening):
                log.warning("drawer not opened for sale %s: stopping", sale.id)

    @property
    def can_print(self) -> bool:
        """True when a printer is configured (it may still be out of paper)."""
        return self._queue is not None

    def print_receipt(self, sale: Sale, *, copy: bool = False) -> bool:
        """Queue the receipt of a stored document (the customer asked, or a COPY reprint)."""
        if self._queue is None:
            return False
        self._print(sale, copy=copy)
        return True

    def _report_made(self, event: ReportMade) -> None:
        self.print_report(event.report)

    def print_report(
        self,
        report: TillReport | Receipt,
        *,
        copy: bool = False,
        name_of: Callable[[str], str] = str,
    ) -> bool:
        """Queue an X or Z report (or its paper), marked COPY for a reprint; False: no printer.

        `name_of` names the staff ids the report holds (the screens know the names).
        """
        if self._queue is None:
            return False
        if isinstance(report, Receipt):
            paper = report.as_copy() if copy else report
        else:
            store = self._app.settings.store
            paper = report_receipt(
                report, store_name=store.name, locale=store.locale, copy=copy, name_of=name_of
            )
        self._queue.submit(paper)
        return True

    def find_receipt(self, code: str) -> Sale | None:
        """The stored document a scanned or typed code names: its receipt number (the
        receipt's barcode) or its id (the receipt's QR code); None when there is none."""
        code = code.strip()
        if not code:
            return None
        try:
            return self._app.ledger.by_receipt(code) or self._app.ledger.get(code)
        except (StoreError, DatabaseError) as err:
            log.warning("receipt %s not looked up: %s", code, err)
            return None

    def recent_jobs(self, limit: int = 50) -> list[PrintJob]:
        """The newest print jobs, newest first (their state says how each went)."""
        try:
            return self.print_jobs.recent(limit)
        except StoreError as err:
            log.error("print jobs not read: %s", err)
            return []

    def uncertain_jobs(self) -> list[PrintJob]:
        """Jobs that may have printed (the answer was lost): staff reprint or settle each."""
        try:
            return self.print_jobs.of_state("uncertain")
        except StoreError as err:
            log.error("print jobs not read: %s", err)
            return []

    def reprint_job(self, job_id: int) -> bool:
        """Print job `job_id`'s paper again, marked COPY; False without a printer or job.

        A job that may have printed is settled as not printed: staff looked and chose a copy.
        """
        job = self._job(job_id)
        if self._queue is None or job is None:
            return False
        self._queue.submit(job.receipt.as_copy())
        if job.state == "uncertain":
            self._settle(job_id, "failed", "reprinted as a copy")
        return True

    def job_printed(self, job_id: int) -> bool:
        """Staff saw job `job_id` on paper: a job that may have printed is marked printed."""
        job = self._job(job_id)
        if job is None or job.state != "uncertain":
            return False
        return self._settle(job_id, "printed", "marked printed by staff")

    def _job(self, job_id: int) -> PrintJob | None:
        try:
            return self.print_jobs.get(job_id)
        except StoreError as err:
            log.error("print job %d not read: %s", job_id, err)
            return None

    def _settle(self, job_id: int, state: PrintJobState, reason: str) -> bool:
        try:
            self.print_jobs.set_state(job_id, state, reason)
        except StoreError as err:
            log.error("print job %d not marked %s: %s", job_id, state, err)
            return False
        log.info("print job %d settled by staff: %s (%s)", job_id, state, reason)
        return True

    def retry_printing(self) -> None:
        """Try the waiting receipts now (paper loaded, printer plugged back in)."""
        if self._queue is not None:
            self._queue.retry_now()

    def _print(self, sale: Sale, *, copy: bool = False) -> None:
        if self._queue is None:
            return
        store = self._app.settings.store
        receipt = receipt_for(
            sale,
            store_name=store.name,
            locale=store.locale,
            header=self._header,
            footer=self._footer,
            card_slip=self._slip_of(sale),
            copy=copy,
            stored_value=self._stored_value_of(sale),
        )
        self._queue.submit(receipt)

    def _stored_value_of(self, sale: Sale) -> CardDebitResult | None:
        """What the hub's stored-value card that paid `sale` held after it, as known here."""
        cards = self._app.cards
        references = [t.reference for t in sale.tenders if t.kind == "stored_value"]
        if cards is None or not references:
            return None
        try:
            return cards.after(references[0])
        except StoreError as err:
            log.warning("card balance for the receipt of %s not read: %s", sale.id, err)
            return None

    def kick_drawer(self, opening: DrawerOpening) -> bool:
        """Open the drawer off the main thread (a no-sale); False without a drawer, or stopping."""
        if self._drawer is None:
            return False
        return self._on_worker(self._kick, opening)

    def _kick(self, opening: DrawerOpening) -> None:
        assert self._drawer is not None
        try:
            self._drawer.kick(opening)
        except DeviceError as err:
            log.warning("drawer did not open for sale %s: %s", opening.reference, err)
        except Exception:  # a bug in an adapter must not vanish inside the thread pool
            log.exception("drawer kick for sale %s failed", opening.reference)

    def _opened(self, event: DrawerOpened) -> None:
        # A durable write waits for the disk: on the drawer's worker, never in a frame.
        # Stopping, no frame is drawn any more and the opening must still be logged.
        if not self._on_worker(self._record, event):
            self._record(event)

    def _record(self, event: DrawerOpened) -> None:
        try:
            self._drawer_log.record(event.device, event.opening)
        except StoreError as err:  # a full or failing card: one line, the storage watch has it
            log.error("drawer opening %s not logged: %s", event.opening.reference, err)
        except Exception:  # an error inside the thread pool would vanish without a word
            log.exception("drawer opening %s not logged", event.opening.reference)
