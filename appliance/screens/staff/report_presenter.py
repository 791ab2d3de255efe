"""X and Z reports on screen: made (X), shown after a close (Z), printed, and printed again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, StringProperty

from appliance.core.reports import TillReport
from appliance.core.tax import BASIS_POINTS
from appliance.errors import ApplianceError
from appliance.screens.i18n import Translator
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.messages import staff_message
from appliance.screens.presenters.shift_state import ShiftState
from appliance.screens.staff.status_presenter import tender_name

log = logging.getLogger(__name__)

SCREEN = "report"
Row = dict[str, Any]


def rate_text(rate: int) -> str:
    """A tax rate in basis points as a percentage: 1900 -> "19 %", 770 -> "7.7 %"."""
    return f"{rate * 100 / BASIS_POINTS:g} %"


def report_title(tr: Translator, report: TillReport) -> str:
    """ "Z report 12" or "X report 3 of shift 7"."""
    if report.kind == "z":
        return tr._("Z report {number}").format(number=report.number)
    return tr._("X report {number} of shift {shift}").format(
        number=report.number, shift=report.shift_number
    )


def report_rows(
    tr: Translator, report: TillReport, name_of: Callable[[str], str] = str
) -> list[Row]:
    """Every figure of a report as labelled rows, in the order of the printed report.

    A row is {"label", "value", "heading"}; "state" is "degraded" on a figure to look at
    (a cash difference, an opening nobody explained). `name_of` names a staff id.
    """
    cur = report.currency

    def money(minor: int) -> str:
        return tr.money(minor, cur)

    rows: list[Row] = []

    def heading(text: str) -> None:
        rows.append({"label": text, "value": "", "heading": True, "state": "ok"})

    def line(label: str, value: str, state: str = "ok") -> None:
        rows.append({"label": label, "value": value, "heading": False, "state": state})

    line(tr._("Shift"), str(report.shift_number))
    line(tr._("Staff"), name_of(report.staff))
    line(tr._("Opened"), tr.datetime(report.opened_at.astimezone()))
    line(tr._("Made"), tr.datetime(report.made_at.astimezone()))
    heading(tr._("Sales by tender"))
    for kind, amount in sorted(report.tenders.items()):
        line(tender_name(tr, kind), money(amount))
    line(
        tr.n_("{count} sale", "{count} sales", report.sales_count).format(count=report.sales_count),
        money(report.sales_gross),
    )
    heading(tr._("Tax by rate"))
    for tax in report.taxes:
        line(
            tr._("{rate}: net {net}, tax {tax}").format(
                rate=rate_text(tax.rate), net=money(tax.net), tax=money(tax.tax)
            ),
            money(tax.gross),
        )
    heading(tr._("Corrections"))
    line(
        tr.n_("{count} refund", "{count} refunds", report.refunds_count).format(
            count=report.refunds_count
        ),
        money(report.refunds_total),
    )
    line(
        tr.n_("{count} void", "{count} voids", report.voids_count).format(count=report.voids_count),
        money(report.voids_total),
    )
    line(tr._("Discounts"), money(report.discounts))
    line(tr._("Cash rounding"), money(report.rounding))
    heading(tr._("Drawer openings"))
    line(tr._("With a sale"), str(report.drawer_with_sale))
    line(tr._("Without a sale"), str(report.drawer_without_sale))
    line(
        tr._("With no sale or reason"),
        str(report.drawer_unexplained),
        "degraded" if report.drawer_unexplained else "ok",
    )
    heading(tr._("Cash"))
    line(tr._("Float"), money(report.float_total))
    line(tr._("Cash in"), money(report.cash_in))
    line(tr._("Cash out"), money(report.cash_out))
    line(tr._("Expected in the drawer"), money(report.expected_cash))
    if report.counted_cash is not None:
        line(tr._("Counted"), money(report.counted_cash))
    if report.difference is not None:
        state = "degraded" if report.difference else "ok"
        line(tr._("Difference"), money(report.difference), state)
    if report.signed_off_by:
        line(tr._("Signed off by"), name_of(report.signed_off_by))
    heading(tr._("Grand total"))
    line(tr._("Carried over, with this period"), money(report.grand_total))
    return rows


class ReportPresenter(EventDispatcher):
    """The report screen: one report's rows; X report makes a new one, Print a copy."""

    title = StringProperty("")
    rows = ListProperty()
    shown = BooleanProperty(False)  # a report is on show
    saving = BooleanProperty(False)  # an X report is being made
    message = StringProperty("")

    def __init__(self, ctx: ScreenContext, shift: ShiftState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        self._shift = shift
        self.report: TillReport | None = None
        ctx.session.bind(language=lambda *_args: self._show())

    def show(self, report: TillReport) -> None:
        """Put `report` on the report screen (it is shown by the caller going there)."""
        self.report = report
        self.message = ""
        self._show()

    def make_x(self) -> bool:
        """Make an X report of the open shift (stored off the main thread), show and print it."""
        tr = self._ctx.tr
        staff = self._ctx.session.staff
        if staff is None:
            self._ctx.session.say(tr._("Please log in first."), "warning")
            return False
        if self.saving:
            return False
        reports = self._ctx.stores.reports
        self.saving = True
        self._ctx.writes.run(lambda: reports.x_report(staff.staff_id), self._made)
        return True

    def print_copy(self) -> bool:
        """Print the report on show again, marked COPY."""
        if self.report is None:
            return False
        return self._print(self.report, copy=True)

    def back(self) -> None:
        """Back to the till."""
        self._ctx.session.go("till")

    def made(self, report: TillReport) -> None:
        """A report was just made (an X, or the Z of a close): print it and show it."""
        self.show(report)
        self._print(report, copy=False)
        self._ctx.session.go(SCREEN)

    def _made(self, report: TillReport | None, error: ApplianceError | None) -> None:
        self.saving = False
        if report is None:
            self._ctx.session.say(staff_message(self._ctx.tr, error), "warning")
            return
        log.info("X report %d of shift %d made", report.number, report.shift_number)
        self.made(report)

    def _print(self, report: TillReport, *, copy: bool) -> bool:
        tr = self._ctx.tr
        after_sale = self._ctx.services.after_sale
        if not after_sale.print_report(report, copy=copy, name_of=self._shift.name_of):
            self.message = tr._("There is no receipt printer on this till.")
            return False
        self.message = (
            tr._("Printing a copy of {report}.") if copy else tr._("Printing {report}.")
        ).format(report=report_title(tr, report))
        return True

    def _show(self) -> None:
        report = self.report
        self.shown = report is not None
        if report is None:
            self.title = ""
            self.rows = []
            return
        tr = self._ctx.tr
        self.title = report_title(tr, report)
        self.rows = report_rows(tr, report, self._shift.name_of)
