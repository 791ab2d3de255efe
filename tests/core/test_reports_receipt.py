"""A report prints as a Receipt of body lines; the values round-trip through the journal."""

from __future__ import annotations

from datetime import UTC, datetime

from appliance.core.report_receipt import report_number, report_receipt
from appliance.core.reports import ReportTax, TillReport, tally_drawer
from appliance.core.shift import CashMovement, Shift, ShiftClosing
from appliance.drivers.escpos_printer import escpos_printers
from appliance.drivers.receipt_layout import COPY_MARK, lay_out
from appliance.drivers.sim.escpos_parser import EscposParser, PrintedJob

NOW = datetime(2026, 7, 1, 18, 0, tzinfo=UTC)
Z = TillReport(
    kind="z",
    number=3,
    device="till-1",
    shift_id="s3",
    shift_number=7,
    staff="ann",
    currency="EUR",
    opened_at=datetime(2026, 7, 1, 8, 0, tzinfo=UTC),
    made_at=NOW,
    tenders={"cash": 1235, "card": 2000},
    taxes=(ReportTax(1900, 1681, 319, 2000), ReportTax(700, 1153, 81, 1234)),
    sales_count=3,
    sales_gross=3733,
    refunds_count=1,
    refunds_total=499,
    voids_count=0,
    voids_total=0,
    discounts=100,
    rounding=1,
    drawer_with_sale=2,
    drawer_without_sale=1,
    drawer_unexplained=1,
    cash_in=500,
    cash_out=200,
    float_total=10000,
    expected_cash=11535,
    counted_cash=11000,
    difference=-535,
    grand_total=99234,
    signed_off_by="sue",
)


def printed(report: TillReport, copy: bool = False) -> PrintedJob:
    dummy = escpos_printers().Dummy(profile="default")
    lay_out(dummy, report_receipt(report, store_name="Pop-up", locale="en_US", copy=copy), 42)
    [job] = [out for out in EscposParser().feed(bytes(dummy.output)) if isinstance(out, PrintedJob)]
    return job


def line(job: PrintedJob, start: str) -> str:
    return next(x for x in job.lines if x.startswith(start))


def test_a_z_prints_every_section_to_the_cent() -> None:
    job = printed(Z)
    assert "Z REPORT" in job.lines
    assert job.barcodes == ["Z-000003"]
    assert line(job, "Net").endswith("€32.34")
    assert line(job, "Cash rounding").endswith("€0.01")
    assert line(job, "Tenders total").endswith("€32.35")
    assert line(job, "Expected in drawer").endswith("€115.35")
    assert line(job, "Difference").endswith("-€5.35")
    assert line(job, "Signed off by").endswith("sue")
    assert line(job, "Unexplained").endswith("1")
    assert line(job, "Grand total").endswith("€992.34")
    assert line(job, "19 %").endswith("€20.00")
    assert COPY_MARK not in job.lines
    assert COPY_MARK in printed(Z, copy=True).lines


def test_an_x_has_no_count_and_its_own_number() -> None:
    x = TillReport.from_dict({**Z.to_dict(), "kind": "x", "number": 2, "counted_cash": None})
    assert report_number(x) == "X-7-2"
    job = printed(x)
    assert "X REPORT" in job.lines
    assert not any(x.startswith("Counted") for x in job.lines)


def test_an_uncounted_z_says_so() -> None:
    z = TillReport.from_dict({**Z.to_dict(), "counted_cash": None, "difference": None})
    assert line(printed(z), "Counted").endswith("not counted")


def test_reports_shifts_and_moves_round_trip_as_plain_json() -> None:
    import json

    assert TillReport.from_dict(json.loads(json.dumps(Z.to_dict()))) == Z
    shift = Shift("s", 1, "t", "ann", "EUR", NOW, {2000: 2, 5: 3}, 4015, 12)
    assert Shift.from_dict(json.loads(json.dumps(shift.to_dict()))) == shift
    move = CashMovement("m", "s", "out", 100, "bank", "ann", NOW)
    assert CashMovement.from_dict(json.loads(json.dumps(move.to_dict()))) == move
    closing = ShiftClosing("s", {100: 1}, 100, 120, -20, "ann", "", NOW, 9)
    assert ShiftClosing.from_dict(json.loads(json.dumps(closing.to_dict()))) == closing


def test_openings_nobody_accounts_for_are_flagged() -> None:
    tally = tally_drawer(
        [("sale", ""), ("no_sale", "ann"), ("no_sale", ""), ("by_hand", ""), ("remote", "")]
    )
    assert (tally.with_sale, tally.without_sale, tally.unexplained) == (1, 4, 2)


def test_the_paper_names_the_staff_with_the_ids_the_records_keep() -> None:
    names = {"sue": "Sue Supervisor"}
    dummy = escpos_printers().Dummy(profile="default")
    paper = report_receipt(
        Z, store_name="Pop-up", locale="en_US", name_of=lambda i: names.get(i, i)
    )
    lay_out(dummy, paper, 42)
    [job] = [out for out in EscposParser().feed(bytes(dummy.output)) if isinstance(out, PrintedJob)]
    assert line(job, "Signed off by").endswith("Sue Supervisor (sue)")
    closed_by = line(job, "Closed by")  # a name the directory does not know stays the id
    assert closed_by.endswith(f" {Z.staff}") and "(" not in closed_by
