"""A reprint says COPY on paper, a report prints its free lines, and a kept receipt reads back."""

from __future__ import annotations

import json
from dataclasses import replace

from appliance.core.receipt import Receipt, TextLine, receipt_from_dict, receipt_to_dict
from appliance.drivers.escpos_printer import escpos_printers
from appliance.drivers.receipt_layout import COPY_MARK, lay_out
from appliance.drivers.sim.escpos_parser import EscposParser, PrintedJob
from tests.drivers.test_escpos_printer import receipt


def printed(r: Receipt) -> PrintedJob:
    """The paper `r` comes out as, through the real layout and the simulator's parser."""
    dummy = escpos_printers().Dummy(profile="default")
    lay_out(dummy, r, 42)
    [job] = [out for out in EscposParser().feed(bytes(dummy.output)) if isinstance(out, PrintedJob)]
    return job


def test_a_copy_says_so_in_large_letters_above_and_below() -> None:
    original = printed(receipt(3))
    copy = printed(receipt(3).as_copy())
    marks = [b for b in copy.blocks if b.text == COPY_MARK]
    assert len(marks) == 2
    assert all(m.style.bold and m.style.width == 2 and m.style.height == 2 for m in marks)
    assert COPY_MARK not in original.lines
    assert [line for line in copy.lines if line != COPY_MARK] == original.lines
    assert copy.barcodes == original.barcodes == ["K01-000003"]


def test_a_receipt_without_copy_or_body_prints_as_before() -> None:
    r = receipt(4)
    assert (r.copy, r.body) == (False, ())
    job = printed(r)
    assert any(line.startswith("TOTAL") for line in job.lines)


def test_a_report_prints_its_free_lines_and_no_empty_totals() -> None:
    report = Receipt(
        store_name="Corner Shop",
        header=(),
        title="Z REPORT",
        receipt_number="Z-000012",
        sale_id="",
        created_at="2024-05-01 18:00",
        lines=(),
        taxes=(),
        discount_total="",
        total="",
        tenders=(),
        change="",
        footer=(),
        body=(
            TextLine("Sales by tender", bold=True),
            TextLine("Cash", "120,00 €"),
            TextLine(""),
            TextLine("A very long remark that has to wrap over more than one line of paper"),
        ),
    )
    job = printed(report)
    assert "Z REPORT" in job.lines
    heading = next(b for b in job.blocks if b.text == "Sales by tender")
    assert heading.style.bold
    cash = next(line for line in job.lines if line.startswith("Cash"))
    assert len(cash) == 42 and cash.endswith("120,00 €".replace("\u00a0", " "))
    assert not any(line.startswith("TOTAL") or line == "-" * 42 for line in job.lines)
    assert job.barcodes == ["Z-000012"] and job.qr == []
    assert job.cuts == 1


def test_a_kept_receipt_reads_back_equal() -> None:
    r = replace(receipt(5), card_slip=("CARD", "****1234"), body=(TextLine("a", "b", True),))
    kept = json.loads(json.dumps(receipt_to_dict(r)))  # as the store keeps it
    assert receipt_from_dict(kept) == r
    assert receipt_from_dict(receipt_to_dict(r.as_copy())).copy
