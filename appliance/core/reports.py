"""X and Z reports: what a shift took, by tender and tax rate, and the cash it should hold.

How the totals add up (tests/core/test_reports_totals.py proves it):
- net = sales_gross - refunds_total - voids_total = the sum of the tax lines' gross;
- the tender lines add up to net + rounding (cash is paid rounded; docs/cash.md);
- grand_total = the previous Z's grand total + this report's net.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from appliance.core.events import Event
from appliance.core.sale import Sale
from appliance.core.shift import CashMovement, Shift, ShiftClosing, expected_cash

ReportKind = Literal["x", "z"]
# Drawer openings the records account for; anything else (opened by hand) is unexplained.
EXPLAINED_DRAWER_REASONS = frozenset({"sale", "no_sale", "remote", "selftest"})


@dataclass(frozen=True, slots=True)
class ReportTax:
    """Net, tax and gross of one tax rate (basis points) over the report's documents."""

    rate: int
    net: int
    tax: int
    gross: int


@dataclass(frozen=True, slots=True)
class DrawerTally:
    """Drawer openings in a report's period."""

    with_sale: int = 0
    without_sale: int = 0
    unexplained: int = 0  # opened by hand, or a no-sale nobody named


def tally_drawer(openings: Iterable[tuple[str, str]]) -> DrawerTally:
    """Count (reason, staff) openings: with a sale, without, and those nobody accounts for."""
    with_sale = without_sale = unexplained = 0
    for reason, staff in openings:
        if reason == "sale":
            with_sale += 1
            continue
        without_sale += 1
        if reason not in EXPLAINED_DRAWER_REASONS or (reason == "no_sale" and not staff.strip()):
            unexplained += 1
    return DrawerTally(with_sale, without_sale, unexplained)


@dataclass(frozen=True, slots=True, kw_only=True)
class TillReport:
    """An X (mid-shift) or Z (closing) report; amounts in minor units of `currency`.

    `number`: a Z's number is gapless from 1 per device and never repeated; an X's counts
    the X reports of its shift. `counted_cash` and `difference` are None on an X and on a
    Z of a shift nobody counted (a kiosk closed by its schedule).
    """

    kind: ReportKind
    number: int
    device: str
    shift_id: str
    shift_number: int
    staff: str  # who made the report (closed the shift, for a Z)
    currency: str
    opened_at: datetime
    made_at: datetime
    tenders: dict[str, int]
    taxes: tuple[ReportTax, ...]
    sales_count: int
    sales_gross: int
    refunds_count: int
    refunds_total: int  # given back, positive
    voids_count: int
    voids_total: int  # cancelled, positive
    discounts: int
    rounding: int
    drawer_with_sale: int
    drawer_without_sale: int
    drawer_unexplained: int
    cash_in: int
    cash_out: int
    float_total: int
    expected_cash: int
    counted_cash: int | None
    difference: int | None
    grand_total: int
    signed_off_by: str = ""
    opened_by: str = ""  # who opened the shift (counted its float)
    after_sequence: int = 0  # the report holds documents numbered after this ...
    upto_sequence: int = 0  # ... up to this one

    @property
    def net(self) -> int:
        """What the period took: sales less refunds and voids (the tax lines' gross)."""
        return self.sales_gross - self.refunds_total - self.voids_total

    @property
    def tenders_total(self) -> int:
        """What the tender lines add up to: the net plus the cash rounding."""
        return sum(self.tenders.values())

    @property
    def title(self) -> str:
        """ "Z 3" or "X 2" as staff read it."""
        return f"{self.kind.upper()} {self.number}"

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON values: the journal's "x_report"/"z_report" body, stored as is."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["opened_at"] = self.opened_at.isoformat()
        data["made_at"] = self.made_at.isoformat()
        data["tenders"] = dict(sorted(self.tenders.items()))
        data["taxes"] = [
            {"rate": t.rate, "net": t.net, "tax": t.tax, "gross": t.gross} for t in self.taxes
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TillReport:
        """The report `to_dict` wrote; a field added later takes its default."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["opened_at"] = datetime.fromisoformat(data["opened_at"])
        values["made_at"] = datetime.fromisoformat(data["made_at"])
        values["tenders"] = {str(k): int(v) for k, v in data["tenders"].items()}
        values["taxes"] = tuple(ReportTax(**t) for t in data["taxes"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ReportMade(Event):
    """An X or Z report was made and stored; print or show it."""

    report: TillReport


@dataclass(frozen=True, slots=True)
class ShiftClosed(Event):
    """A shift was closed; its Z report was made in the same transaction."""

    closing: ShiftClosing
    report: TillReport


def build_report(
    kind: ReportKind,
    number: int,
    *,
    device: str,
    shift: Shift,
    staff: str,
    made_at: datetime,
    documents: Sequence[Sale],
    movements: Sequence[CashMovement],
    drawer: DrawerTally,
    previous_grand_total: int,
    closing: ShiftClosing | None = None,
    upto_sequence: int | None = None,
) -> TillReport:
    """The report over a shift's documents, cash movements and drawer openings."""
    tenders: dict[str, int] = {}
    taxes: dict[int, list[int]] = {}
    counts = {"sale": 0, "refund": 0, "void": 0}
    amounts = {"sale": 0, "refund": 0, "void": 0}
    discounts = rounding = cash = 0
    for document in documents:
        counts[document.kind] += 1
        amounts[document.kind] += document.total
        discounts += document.discount_total
        rounding += document.rounding
        for tender in document.tenders:
            tenders[tender.kind] = tenders.get(tender.kind, 0) + tender.amount
            if tender.kind == "cash":
                cash += tender.amount
        for line in document.taxes:
            into = taxes.setdefault(line.rate, [0, 0, 0])
            into[0] += line.net
            into[1] += line.tax
            into[2] += line.gross
    moved_in = sum(m.amount for m in movements if m.kind == "in")
    moved_out = sum(m.amount for m in movements if m.kind == "out")
    net = amounts["sale"] + amounts["refund"] + amounts["void"]
    last = max((d.sequence for d in documents), default=shift.after_sequence)
    return TillReport(
        kind=kind,
        number=number,
        device=device,
        shift_id=shift.id,
        shift_number=shift.number,
        staff=staff,
        currency=shift.currency,
        opened_at=shift.opened_at,
        made_at=made_at,
        tenders=tenders,
        taxes=tuple(ReportTax(rate, *sums) for rate, sums in sorted(taxes.items(), reverse=True)),
        sales_count=counts["sale"],
        sales_gross=amounts["sale"],
        refunds_count=counts["refund"],
        refunds_total=-amounts["refund"],
        voids_count=counts["void"],
        voids_total=-amounts["void"],
        discounts=discounts,
        rounding=rounding,
        drawer_with_sale=drawer.with_sale,
        drawer_without_sale=drawer.without_sale,
        drawer_unexplained=drawer.unexplained,
        cash_in=moved_in,
        cash_out=moved_out,
        float_total=shift.float_total,
        expected_cash=expected_cash(shift.float_total, cash, moved_in, moved_out),
        counted_cash=closing.counted_total if closing else None,
        difference=closing.difference if closing else None,
        grand_total=previous_grand_total + net,
        signed_off_by=closing.signed_off_by if closing else "",
        opened_by=shift.staff,
        after_sequence=shift.after_sequence,
        upto_sequence=last if upto_sequence is None else upto_sequence,
    )
