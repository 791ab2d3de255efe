"""Through the real store: every document lands in exactly one Z, Z numbers run without gaps,
and the Zs add up to the documents, their tenders and the journal's copies of them."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peewee import SqliteDatabase

from appliance.core.reports import TillReport
from appliance.core.sale import Sale, draft_refund, draft_sale, refund_total
from appliance.core.tax import TaxPolicy
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger
from appliance.store.journal import FiscalJournal
from appliance.store.migrations import migrate
from appliance.store.reports import ReportBook
from appliance.store.shifts import ShiftBook, void_sale
from tests.core.test_reports_totals import pay
from tests.core.test_sale import POLICIES, carts

EUR = (5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5, 2, 1)
ACTIONS = ["sale", "sale", "sale", "refund", "void", "cash_in", "cash_out", "x", "close"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(POLICIES), st.sampled_from([0, 5]), st.data())
def test_every_document_is_in_exactly_one_z_and_the_zs_add_up(
    policy: TaxPolicy, increment: int, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = open_database(Path(folder) / "appliance.db")
        try:
            migrate(db)
            run_a_till(db, policy, increment, data)
        finally:
            db.close()


def run_a_till(db: SqliteDatabase, policy: TaxPolicy, increment: int, data: st.DataObject) -> None:
    ledger = SalesLedger(db, "T1")
    shifts = ShiftBook(
        db,
        till="t1",
        currency="EUR",
        denominations=EUR,
        signoff_threshold=0,
    )
    reports = ReportBook(db, shifts)
    sales: list[Sale] = []
    corrected: set[str] = set()  # refunded or voided: left alone from then on
    zs: list[TillReport] = []
    shifts.open("ann", {1000: 1})
    for action in data.draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=14)):
        if shifts.current() is None:
            shifts.open("ann", {1000: data.draw(st.integers(0, 3))})
        if action == "sale":
            cart = data.draw(carts())
            total = cart.totals(policy).total
            paid = pay(data.draw, total, increment)
            draft = draft_sale(
                cart,
                policy,
                paid,
                device_id="t1",
                now=datetime.now(UTC),
                cash_rounding=increment,
            )
            sales.append(ledger.commit(draft))
        elif action == "refund" and (left := [s for s in sales if s.id not in corrected]):
            original = data.draw(st.sampled_from(left))
            corrected.add(original.id)
            pieces = {original.lines[0].line_no: original.lines[0].quantity}
            gross = refund_total(original, pieces, already_refunded={})
            ledger.commit(
                draft_refund(
                    original,
                    pieces,
                    pay(data.draw, gross, increment),
                    already_refunded={},
                    device_id="t1",
                    now=datetime.now(UTC),
                    staff="ann",
                    cash_rounding=increment,
                )
            )
        elif action == "void" and (left := [s for s in sales if s.id not in corrected]):
            original = data.draw(st.sampled_from(left))
            if shifts.can_void(original) == "":  # else: sold in an earlier shift
                void_sale(ledger, shifts, original, supervisor="sue", staff="ann", reason="x")
                corrected.add(original.id)
        elif action == "cash_in":
            shifts.move_cash("in", data.draw(st.integers(1, 5000)), "change", "ann")
        elif action == "cash_out" and (expected := shifts.expected_cash()) > 0:
            shifts.move_cash("out", data.draw(st.integers(1, expected)), "bank", "ann")
        elif action == "x":
            x = reports.x_report("ann")
            assert x.expected_cash == shifts.expected_cash()
        elif action == "close":
            expected = shifts.expected_cash()
            counted = data.draw(st.integers(0, max(0, expected) + 300))
            closing, z = shifts.close({1: counted} if counted else {}, "ann", supervisor="sue")
            assert (z.expected_cash, z.counted_cash, closing.difference) == (
                expected,
                counted,
                counted - expected,
            )
            zs.append(z)
    if shifts.current() is not None:
        zs.append(shifts.close(None, "ann")[1])
    check_the_zs(db, ledger, reports, zs)


def check_the_zs(
    db: SqliteDatabase, ledger: SalesLedger, reports: ReportBook, zs: list[TillReport]
) -> None:
    """Each document in one Z; the Zs add up; the journal holds the very same Zs."""
    documents = list(ledger.since())
    assert [z.number for z in zs] == list(range(1, len(zs) + 1))
    covered = [s for z in zs for s in range(z.after_sequence + 1, z.upto_sequence + 1)]
    assert covered == [d.sequence for d in documents]  # each once, in order, none left out
    assert sum(z.net for z in zs) == sum(d.total for d in documents) == zs[-1].grand_total
    assert sum(z.tenders_total for z in zs) == sum(d.paid for d in documents)
    assert sum(z.rounding for z in zs) == sum(d.rounding for d in documents)
    for z in zs:
        assert z.net == z.sales_gross - z.refunds_total - z.voids_total
        assert z.tenders_total == z.net + z.rounding == sum(t.gross for t in z.taxes) + z.rounding
    journal = FiscalJournal(db)
    assert journal.verify().ok
    journalled = [
        TillReport.from_dict(e.event()) for e in journal.entries() if e.kind == "z_report"
    ]
    assert journalled == zs
    assert reports.list(limit=1000, kind="z") == zs[::-1]
