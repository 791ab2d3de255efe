"""Reprints marked COPY: any receipt (scanned, typed or from the shift's list), any X or Z
report, and the papers the printer may or may not have printed, which staff settle."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    OptionProperty,
    StringProperty,
)

from appliance.core.ids import receipt_number
from appliance.core.print_jobs import PrintJob
from appliance.core.report_receipt import report_number
from appliance.core.reports import TillReport
from appliance.core.sale import Sale
from appliance.errors import ApplianceError
from appliance.screens.i18n import Translator
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.input_router import InputRouter
from appliance.screens.presenters.shift_state import ShiftState
from appliance.screens.staff.report_presenter import report_title

log = logging.getLogger(__name__)

SCREEN = "reprint"
REPORTS_LISTED = 20  # the newest X and Z reports offered for a reprint
REPORTS_SEARCHED = 500  # the X reports a scanned X barcode is looked for in
JOBS_LOOKED_AT = 50  # the newest print jobs searched for "may have printed"
Row = dict[str, Any]


class ReprintPresenter(EventDispatcher):
    """The reprint screen: a receipt number to type or scan, and one list by section."""

    section = OptionProperty("receipts", options=["receipts", "reports", "unsure"])
    digits = StringProperty("")  # typed receipt number, without the till's prefix
    prefix = StringProperty("")
    rows = ListProperty()  # [{"key", "title", "detail", "action", "other"}]: the section's list
    unsure_count = NumericProperty(0)  # papers that may have printed, for staff to settle
    loading = BooleanProperty(False)  # the lists are being read
    message = StringProperty("")

    def __init__(
        self, ctx: ScreenContext, router: InputRouter, shift: ShiftState, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._shift = shift  # names the staff on a report's paper
        self._ledger = ctx.services.app.ledger
        self.prefix = ctx.settings.device.receipt_prefix
        self._sales: dict[str, Sale] = {}
        self._reports: dict[str, TillReport] = {}
        self._jobs: dict[str, PrintJob] = {}
        router.on_scan(SCREEN, self._scanned)
        ctx.session.bind(language=lambda *_args: self._show())

    def open(self, section: str = "") -> bool:
        """Read the shift's receipts and the reports (off the main thread: a day's worth is
        many documents), then show the reprint screen, at `section` if given. False while a
        read is under way."""
        if self.loading:
            return False
        self.digits = ""
        self.message = ""
        if section:
            self.section = section
        self.loading = True
        shifts, reports = self._ctx.stores.shifts, self._ctx.stores.reports

        def read() -> tuple[list[Sale], list[TillReport]]:
            return shifts.sales_of(), reports.list(limit=REPORTS_LISTED)

        self._ctx.writes.run(read, self._loaded)
        return True

    def show(self, section: str) -> None:
        """Show the receipts of the shift, the reports, or the papers that may have printed."""
        self.section = section
        self._show()

    def _loaded(
        self, found: tuple[list[Sale], list[TillReport]] | None, error: ApplianceError | None
    ) -> None:
        self.loading = False
        if found is None:
            log.warning("reprint lists not read: %s", error)
            found = [], []
        sales, reports = found
        self._sales = {s.id: s for s in reversed(sales)}
        self._reports = {f"{r.kind}-{r.number}-{r.shift_id}": r for r in reports}
        self.refresh_unsure()
        self._ctx.session.go(SCREEN)

    def refresh_unsure(self) -> int:
        """Read the print jobs that may have printed; how many there are."""
        jobs = self._ctx.services.after_sale.uncertain_jobs()
        self._jobs = {str(job.id): job for job in jobs}
        self.unsure_count = len(self._jobs)
        self._show()
        return len(self._jobs)

    def type(self, digits: str) -> None:
        """The keypad's digits changed."""
        self.digits = "".join(ch for ch in digits if ch.isdigit())[:9]

    def find_typed(self) -> bool:
        """Reprint the receipt whose number was typed (the digits after the prefix)."""
        if not self.digits:
            return False
        return self.find(receipt_number(self.prefix, int(self.digits)))

    def find(self, code: str) -> bool:
        """A receipt's barcode (its number) or QR code (the sale id), or a report's barcode
        ("Z-000003", "X-12-2"): print it again."""
        code = code.strip()
        sale = self._ctx.services.after_sale.find_receipt(code)
        self.digits = ""
        if sale is not None:
            return self._print_sale(sale)
        report = self._report_by_code(code)
        if report is not None:
            return self._print_report(report)
        self.message = self._ctx.tr._("There is no receipt {number} on this till.").format(
            number=code
        )
        return False

    def _report_by_code(self, code: str) -> TillReport | None:
        """The X or Z report whose printed number is `code`, or None."""
        reports = self._ctx.stores.reports
        code = code.upper()
        try:
            if code.startswith("Z-") and code[2:].isdigit():
                return reports.get_z(int(code[2:]))
            if code.startswith("X-"):
                listed = reports.list(limit=REPORTS_SEARCHED, kind="x")
                return next((r for r in listed if report_number(r) == code), None)
        except ApplianceError as err:
            log.warning("report %s not looked up: %s", code, err)
        return None

    def _scanned(self, code: str) -> None:
        self.find(code)

    def last(self) -> bool:
        """Reprint the last receipt of this till."""
        sale = self._ledger.last()
        if sale is None:
            self.message = self._ctx.tr._("There is no receipt to reprint yet.")
            return False
        return self._print_sale(sale)

    def act(self, key: str) -> bool:
        """A row's main button: reprint that receipt or report, or that unsure paper."""
        if self.section == "receipts" and key in self._sales:
            return self._print_sale(self._sales[key])
        if self.section == "reports" and key in self._reports:
            return self._print_report(self._reports[key])
        if self.section == "unsure" and key in self._jobs:
            return self._settle(self._jobs[key], printed=False)
        return False

    def other(self, key: str) -> bool:
        """A row's second button: an unsure paper did print (nothing is printed again)."""
        if self.section == "unsure" and key in self._jobs:
            return self._settle(self._jobs[key], printed=True)
        return False

    def back(self) -> None:
        """Back to the till."""
        self._ctx.session.go("till")

    # -- printing ---------------------------------------------------------------------------

    def _print_sale(self, sale: Sale) -> bool:
        tr = self._ctx.tr
        if not self._ctx.services.after_sale.print_receipt(sale, copy=True):
            self.message = tr._("There is no receipt printer on this till.")
            return False
        log.info("copy of receipt %s printed", sale.receipt_number)
        self.message = tr._("Printing a copy of receipt {number}.").format(
            number=sale.receipt_number
        )
        return True

    def _print_report(self, report: TillReport) -> bool:
        tr = self._ctx.tr
        after_sale = self._ctx.services.after_sale
        if not after_sale.print_report(report, copy=True, name_of=self._shift.name_of):
            self.message = tr._("There is no receipt printer on this till.")
            return False
        self.message = tr._("Printing a copy of {report}.").format(report=report_title(tr, report))
        return True

    def _settle(self, job: PrintJob, *, printed: bool) -> bool:
        """Staff looked at the printer: it printed (done), or it did not (a COPY now)."""
        tr = self._ctx.tr
        after_sale = self._ctx.services.after_sale
        what = job_title(job)
        if printed:
            after_sale.job_printed(job.id)
            self.message = tr._("{paper} is marked as printed.").format(paper=what)
        elif after_sale.reprint_job(job.id):
            self.message = tr._("Printing a copy of {paper}.").format(paper=what)
        else:
            self.message = tr._("There is no receipt printer on this till.")
        log.info("print job %d (%s) settled by staff: printed=%s", job.id, what, printed)
        self.refresh_unsure()
        return True

    # -- rows -------------------------------------------------------------------------------

    def _show(self) -> None:
        tr = self._ctx.tr
        if self.section == "receipts":
            self.rows = [
                {
                    "key": sale.id,
                    "title": f"{kind_title(tr, sale.kind)} {sale.receipt_number}",
                    "detail": tr._("{when}, {amount}").format(
                        when=tr.datetime(sale.created_at.astimezone()),
                        amount=tr.money(sale.total, sale.currency),
                    ),
                    "action": tr._("Print a copy"),
                    "other": "",
                }
                for sale in self._sales.values()
            ]
        elif self.section == "reports":
            self.rows = [
                {
                    "key": key,
                    "title": report_title(tr, report),
                    "detail": tr.datetime(report.made_at.astimezone()),
                    "action": tr._("Print a copy"),
                    "other": "",
                }
                for key, report in self._reports.items()
            ]
        else:
            self.rows = [
                {
                    "key": key,
                    "title": tr._("{paper} may have printed").format(paper=job_title(job)),
                    "detail": job_time(tr, job),
                    "action": tr._("Print again"),
                    "other": tr._("It printed"),
                }
                for key, job in self._jobs.items()
            ]


def kind_title(tr: Translator, kind: str) -> str:
    """A document kind in words: receipt, refund, void."""
    if kind == "refund":
        return tr._("Refund")
    if kind == "void":
        return tr._("Void")
    return tr._("Receipt")


def job_title(job: PrintJob) -> str:
    """What a print job prints: "SIM-12", or a report's title ("Z 3")."""
    receipt = job.receipt
    return " ".join(part for part in (receipt.title, receipt.receipt_number) if part)


def job_time(tr: Translator, job: PrintJob) -> str:
    """When the job was queued, as the till writes dates."""
    try:
        return tr.datetime(datetime.fromisoformat(job.created_at).astimezone())
    except ValueError:
        return job.created_at
