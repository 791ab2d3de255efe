"""An X or Z report as a printable Receipt: every section as free body lines.

A report has no items and no total to the customer, so `lines` and `total` stay empty
and the printer lays out only the body; the report number is the barcode, so a scan
finds the report for a reprint (a Z's number is unique on the device).
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.core.money import Money
from appliance.core.receipt import Receipt, TextLine
from appliance.core.reports import TillReport

TENDER_NAMES = {"cash": "Cash", "card": "Card", "stored_value": "Stored value"}


def report_number(report: TillReport) -> str:
    """The printed (and scannable) number: "Z-000003", or "X-12-2" (shift 12's second X)."""
    if report.kind == "z":
        return f"Z-{report.number:06d}"
    return f"X-{report.shift_number}-{report.number}"


def _rate(basis_points: int) -> str:
    return f"{basis_points / 100:g} %"


def report_lines(
    report: TillReport, locale: str, name_of: Callable[[str], str] = str
) -> tuple[TextLine, ...]:
    """The report's sections as lines (text left, amount right), for paper or screen.

    `name_of` names a staff id; the paper shows the name with the id the records keep.
    """

    def money(minor: int) -> str:
        return Money(minor, report.currency).format(locale)

    def who(staff_id: str) -> str:
        name = name_of(staff_id)
        return f"{name} ({staff_id})" if name and name != staff_id else staff_id

    def when(moment: object) -> str:
        return f"{moment:%Y-%m-%d %H:%M}"

    lines = [
        TextLine(f"Shift {report.shift_number}", who(report.opened_by)),
        TextLine("Opened", when(report.opened_at)),
        TextLine("Until" if report.kind == "z" else "So far", when(report.made_at)),
        TextLine("Closed by" if report.kind == "z" else "Made by", who(report.staff)),
        TextLine(""),
        TextLine("Sales", bold=True),
        TextLine(f"Sales ({report.sales_count})", money(report.sales_gross)),
        TextLine(f"Refunds ({report.refunds_count})", money(-report.refunds_total)),
        TextLine(f"Voids ({report.voids_count})", money(-report.voids_total)),
        TextLine("Net", money(report.net), bold=True),
        TextLine("Discounts given", money(report.discounts)),
        TextLine(""),
        TextLine("Tenders", bold=True),
    ]
    for kind, amount in sorted(report.tenders.items()):
        lines.append(TextLine(TENDER_NAMES.get(kind, kind), money(amount)))
    lines.append(TextLine("Cash rounding", money(report.rounding)))
    lines.append(TextLine("Tenders total", money(report.tenders_total), bold=True))
    lines.append(TextLine(""))
    lines.append(TextLine("Tax", bold=True))
    for tax in report.taxes:
        lines.append(TextLine(_rate(tax.rate), money(tax.gross)))
        lines.append(TextLine("  Net", money(tax.net)))
        lines.append(TextLine("  Tax", money(tax.tax)))
    lines.append(TextLine(""))
    lines.append(TextLine("Cash", bold=True))
    lines.append(TextLine("Float", money(report.float_total)))
    lines.append(TextLine("Cash in", money(report.cash_in)))
    lines.append(TextLine("Cash out", money(-report.cash_out)))
    lines.append(TextLine("Expected in drawer", money(report.expected_cash), bold=True))
    if report.kind == "z":
        if report.counted_cash is None:
            lines.append(TextLine("Counted", "not counted"))
        else:
            lines.append(TextLine("Counted", money(report.counted_cash)))
            lines.append(TextLine("Difference", money(report.difference or 0), bold=True))
        if report.signed_off_by:
            lines.append(TextLine("Signed off by", who(report.signed_off_by)))
    lines.append(TextLine(""))
    lines.append(TextLine("Drawer openings", bold=True))
    lines.append(TextLine("With a sale", str(report.drawer_with_sale)))
    lines.append(TextLine("Without a sale", str(report.drawer_without_sale)))
    lines.append(TextLine("Unexplained", str(report.drawer_unexplained), bold=True))
    lines.append(TextLine(""))
    lines.append(TextLine("Grand total", money(report.grand_total), bold=True))
    return tuple(lines)


def report_receipt(
    report: TillReport,
    *,
    store_name: str,
    locale: str,
    copy: bool = False,
    name_of: Callable[[str], str] = str,
) -> Receipt:
    """The paper of an X or Z report, formatted for `locale`; `copy` marks a reprint."""
    return Receipt(
        store_name=store_name,
        header=(f"Till {report.device}",),
        title=f"{report.kind.upper()} REPORT",
        receipt_number=report_number(report),
        sale_id="",  # no QR code: a report is not a customer's receipt
        created_at=f"{report.made_at:%Y-%m-%d %H:%M}",
        lines=(),
        taxes=(),
        discount_total="",
        total="",
        tenders=(),
        change="",
        footer=(),
        copy=copy,
        body=report_lines(report, locale, name_of),
    )
