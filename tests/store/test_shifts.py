"""The shift book: float, cash moves, counted close with sign-off, Z in the same transaction."""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from peewee import IntegrityError, SqliteDatabase

from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.sale import Sale, draft_refund, draft_sale
from appliance.core.shift import SignOffNeeded
from appliance.core.tender import Tender
from appliance.errors import NoOpenShift, TillError
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger, decode_document, encode_document
from appliance.store.journal import FiscalJournal
from appliance.store.migrations import migrate
from appliance.store.reports import ReportBook
from appliance.store.shifts import ShiftBook, void_sale
from tests.store.crash_writer import COLA, DEVICE_ID, POLICY

EUR = (5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5, 2, 1)
START = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


class StepClock:
    """A clock that moves one minute at each reading."""

    def __init__(self, start: datetime = START) -> None:
        self.at = start

    def now(self) -> datetime:
        self.at += timedelta(minutes=1)
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()


def book(db: SqliteDatabase, threshold: int = 500) -> ShiftBook:
    """A shift book of the sample till."""
    return ShiftBook(
        db,
        till=DEVICE_ID,
        currency="EUR",
        denominations=EUR,
        signoff_threshold=threshold,
        clock=StepClock(),
    )


@pytest.fixture
def shifts(db: SqliteDatabase) -> ShiftBook:
    return book(db)


def sell(ledger: SalesLedger, product: Product = COLA, *, cash: bool = True) -> Sale:
    """One `product` sold, paid in cash (a 20 note, with change) or by card."""
    cart = Cart("EUR").add(ProductMatch(product, None))
    total = cart.totals(POLICY).total
    tender = Tender.cash(2000, total) if cash else Tender("card", total)
    return ledger.commit(
        draft_sale(cart, POLICY, [tender], device_id=DEVICE_ID, now=datetime.now(UTC))
    )


def kinds(db: SqliteDatabase) -> list[str]:
    """The journal's kinds in order."""
    return [e.kind for e in FiscalJournal(db).entries()]


def test_open_counts_the_float_and_journals_it(shifts: ShiftBook, db: SqliteDatabase) -> None:
    shift = shifts.open("ann", {2000: 2, 100: 5, 1: 0})
    assert (shift.number, shift.float_total, shift.float_count) == (1, 4500, {2000: 2, 100: 5})
    assert shifts.current() == shift
    assert kinds(db) == ["shift_open"]
    assert FiscalJournal(db).entries()[0].event()["float_total"] == 4500
    with pytest.raises(TillError, match="is open"):
        shifts.open("bob", {})


def test_a_count_takes_only_the_configured_notes_and_coins(shifts: ShiftBook) -> None:
    with pytest.raises(TillError, match="notes or coins"):
        shifts.open("ann", {300: 1})
    with pytest.raises(TillError, match="whole number"):
        shifts.open("ann", {100: -1})
    assert shifts.current() is None


def test_expected_cash_follows_sales_change_refunds_and_moves(
    shifts: ShiftBook, ledger: SalesLedger
) -> None:
    shifts.open("ann", {1000: 1})
    sale = sell(ledger)  # 1.99 in cash, 20.00 handed over
    sell(ledger, cash=False)
    back = draft_refund(
        sale,
        {1: 1},
        [Tender("cash", -199)],
        already_refunded={},
        device_id=DEVICE_ID,
        now=datetime.now(UTC),
        staff="ann",
    )
    ledger.commit(back)
    shifts.move_cash("in", 500, "change from the bank", "ann")
    shifts.move_cash("out", 200, "lunch for the team", "bob")
    assert shifts.expected_cash() == 1000 + 199 - 199 + 500 - 200
    assert [m.kind for m in shifts.movements()] == ["in", "out"]
    with pytest.raises(TillError, match="should hold"):
        shifts.move_cash("out", 5000, "too much", "bob")
    with pytest.raises(TillError, match="reason"):
        shifts.move_cash("in", 5, " ", "bob")


def test_cash_moves_need_an_open_shift(shifts: ShiftBook) -> None:
    with pytest.raises(NoOpenShift):
        shifts.move_cash("in", 100, "float top-up", "ann")


def test_close_makes_gapless_z_reports_in_the_same_transaction(
    shifts: ShiftBook, ledger: SalesLedger, db: SqliteDatabase
) -> None:
    reports = ReportBook(db, shifts)
    numbers = []
    for _ in range(3):
        shifts.open("ann", {500: 2})
        sell(ledger)
        closing, z = shifts.close({1000: 1, 100: 1, 50: 1, 20: 2, 5: 1, 2: 2}, "ann")
        assert (closing.expected, closing.counted_total, closing.difference) == (1199, 1199, 0)
        numbers.append(z.number)
        assert reports.get_z(z.number) == z
    assert numbers == [1, 2, 3]
    assert reports.last_z() is not None and reports.last_z().number == 3  # type: ignore[union-attr]
    assert [r.number for r in reports.list(kind="z")] == [3, 2, 1]
    assert kinds(db) == ["shift_open", "sale", "shift_close", "z_report"] * 3
    z_body = FiscalJournal(db).entries()[3].event()
    assert z_body["number"] == 1 and z_body["kind"] == "z" and z_body["sales_count"] == 1
    assert FiscalJournal(db).verify().ok
    # The grand total runs on from Z to Z.
    assert [reports.get_z(n).grand_total for n in (1, 2, 3)] == [199, 398, 597]  # type: ignore[union-attr]


def test_a_z_number_cannot_be_stored_twice(shifts: ShiftBook, db: SqliteDatabase) -> None:
    shifts.open("ann", {})
    _, z = shifts.close({}, "ann")
    shift_id = z.shift_id
    with pytest.raises(IntegrityError):
        db.execute_sql(
            "INSERT INTO till_report (kind, number, z_number, shift_id, staff, made_at, body)"
            " VALUES ('z', 9, 1, ?, 'x', 'now', x'00')",
            (shift_id,),
        )


def test_a_difference_over_the_threshold_needs_a_supervisor(
    shifts: ShiftBook, ledger: SalesLedger, db: SqliteDatabase
) -> None:
    shifts.open("ann", {1000: 1})
    sell(ledger)
    before = kinds(db)
    with pytest.raises(SignOffNeeded) as caught:
        shifts.close({500: 1}, "ann")  # 11.99 expected, 5.00 counted
    assert (caught.value.difference, caught.value.threshold) == (-699, 500)
    assert shifts.current() is not None and kinds(db) == before  # nothing was written
    closing, z = shifts.close({500: 1}, "ann", supervisor="sue")
    assert (closing.difference, closing.signed_off_by) == (-699, "sue")
    assert (z.counted_cash, z.difference, z.signed_off_by) == (500, -699, "sue")


def test_a_difference_within_the_threshold_closes_alone(shifts: ShiftBook) -> None:
    shifts.open("ann", {1000: 1})
    closing, _ = shifts.close({500: 1, 10: 1}, "ann")  # 4.90 short, threshold 5.00
    assert closing.difference == -490 and closing.signed_off_by == ""


def test_an_uncounted_close_says_so(shifts: ShiftBook) -> None:
    shifts.open("kiosk", {})
    closing, z = shifts.close(None, "kiosk")
    assert closing.counted is None and z.counted_cash is None and z.difference is None


def test_documents_between_shifts_belong_to_the_next(
    shifts: ShiftBook, ledger: SalesLedger
) -> None:
    before = sell(ledger)  # before the first shift: in no Z
    shifts.open("ann", {})
    first = sell(ledger)
    shifts.close({100: 1, 50: 1, 20: 2, 5: 1, 2: 2}, "ann")
    between = sell(ledger, cash=False)  # a recovered card payment, say
    shift = shifts.open("bob", {})
    during = sell(ledger, cash=False)
    assert [s.id for s in shifts.sales_of()] == [between.id, during.id]
    assert before.id not in {s.id for s in shifts.sales_of(shift)}
    _, z = shifts.close({}, "bob")
    assert z.sales_count == 2 and first.id not in {s.id for s in shifts.sales_of(shift)}


def test_x_reports_are_numbered_per_shift_stored_and_journalled(
    shifts: ShiftBook, ledger: SalesLedger, db: SqliteDatabase
) -> None:
    reports = ReportBook(db, shifts)
    with pytest.raises(NoOpenShift):
        reports.x_report("ann")
    shift = shifts.open("ann", {})
    sell(ledger, cash=False)
    first = reports.x_report("ann")
    second = reports.x_report("ann")
    assert (first.kind, first.number, second.number) == ("x", 1, 2)
    assert first.counted_cash is None and first.tenders == {"card": 199}
    assert kinds(db)[-2:] == ["x_report", "x_report"]
    shifts.close({}, "ann")
    assert [r.title for r in reports.of_shift(shift.id)] == ["X 1", "X 2", "Z 1"]
    shifts.open("ann", {})
    assert reports.x_report("ann").number == 1


def test_void_same_shift_only_with_a_supervisor(
    shifts: ShiftBook, ledger: SalesLedger, db: SqliteDatabase
) -> None:
    shifts.open("ann", {})
    old = sell(ledger)
    shifts.close({100: 1, 50: 1, 20: 2, 5: 1, 2: 2}, "ann")
    shifts.open("bob", {})
    assert "earlier shift" in shifts.can_void(old)
    sale = sell(ledger)
    assert shifts.can_void(sale) == ""
    with pytest.raises(TillError, match="supervisor"):
        void_sale(ledger, shifts, sale, supervisor="", staff="bob", reason="wrong item")
    void = void_sale(ledger, shifts, sale, supervisor="sue", staff="bob", reason="wrong item")
    assert (void.kind, void.references, void.approved_by, void.total) == (
        "void",
        sale.id,
        "sue",
        -199,
    )
    assert "already voided" in shifts.can_void(sale)
    with pytest.raises(TillError, match="already voided"):
        shifts.void(ledger, sale, staff="bob", supervisor="sue", reason="again")
    assert "only a sale" in shifts.can_void(void)
    _, z = shifts.close({}, "bob")
    assert (z.voids_count, z.voids_total, z.net, z.expected_cash) == (1, 199, 0, 0)


def test_a_card_sale_is_refunded_to_the_card_never_voided(
    shifts: ShiftBook, ledger: SalesLedger
) -> None:
    """A void only records money going back: a card's goes back through the terminal."""
    shifts.open("ann", {})
    sale = sell(ledger, cash=False)
    assert "refund it to the card" in shifts.can_void(sale)
    with pytest.raises(TillError, match="refund it to the card"):
        void_sale(ledger, shifts, sale, supervisor="sue", staff="ann", reason="wrong item")
    assert ledger.count() == 1


def test_a_failure_mid_close_leaves_nothing_half_done(
    shifts: ShiftBook, ledger: SalesLedger, db: SqliteDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    import appliance.store.reports as reports_module

    shifts.open("ann", {})
    sell(ledger, cash=False)
    before = kinds(db)

    def broken(*_args: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(reports_module, "append_in_transaction", broken)
    with pytest.raises(OSError):
        shifts.close({}, "ann")
    assert shifts.current() is not None
    assert kinds(db) == before
    assert db.execute_sql("SELECT COUNT(*) FROM till_report").fetchone()[0] == 0
    monkeypatch.undo()
    _, z = shifts.close({}, "ann")
    assert z.number == 1


def _close_and_die(path: str) -> None:
    """Child: close the open shift and die as the Z's journal entry is being written."""
    import appliance.store.reports as reports_module

    db = open_database(path)

    def die(*_args: object) -> None:
        os._exit(3)

    setattr(reports_module, "append_in_transaction", die)  # noqa: B010 - a private name
    book(db).close({}, "ann")
    os._exit(0)


def test_a_process_killed_mid_close_leaves_the_shift_open(db_path: Path) -> None:
    db = open_database(db_path)
    migrate(db)
    book(db).open("ann", {100: 1})
    db.close()
    child = multiprocessing.get_context("spawn").Process(
        target=_close_and_die, args=(str(db_path),)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 3
    db = open_database(db_path)
    shifts = book(db)
    assert shifts.current() is not None
    assert kinds(db) == ["shift_open"]
    assert FiscalJournal(db).verify().ok
    _, z = shifts.close({100: 1}, "ann")
    assert z.number == 1
    db.close()


def test_documents_stored_before_cash_rounding_decode_with_none(ledger: SalesLedger) -> None:
    sale = sell(ledger, cash=False)
    old = json.loads(encode_document(sale))
    del old["rounding"], old["approved_by"]
    again = decode_document(json.dumps(old).encode())
    assert (again.rounding, again.approved_by) == (0, "")


def test_drawer_openings_are_counted_from_the_previous_close(
    shifts: ShiftBook, db: SqliteDatabase
) -> None:
    clock = shifts._clock
    assert isinstance(clock, StepClock)

    def opened(reason: str, staff: str, minute: int) -> None:
        db.execute_sql(
            "INSERT INTO drawer_opening (device, reason, staff, reference, opened_at)"
            " VALUES ('drawer', ?, ?, '', ?)",
            (reason, staff, (START + timedelta(minutes=minute)).isoformat()),
        )

    opened("by_hand", "", 0)  # before the first shift: in no report
    clock.at = START + timedelta(minutes=9)
    shifts.open("ann", {})  # 08:10
    opened("sale", "", 11)
    opened("no_sale", "ann", 12)
    opened("no_sale", "", 13)
    clock.at = START + timedelta(minutes=19)
    _, first = shifts.close({}, "ann")  # 08:20
    opened("by_hand", "", 30)  # between the shifts: in the next one
    clock.at = START + timedelta(minutes=39)
    shifts.open("bob", {})  # 08:40
    clock.at = START + timedelta(minutes=49)
    _, second = shifts.close({}, "bob")  # 08:50
    assert (first.drawer_with_sale, first.drawer_without_sale, first.drawer_unexplained) == (
        1,
        2,
        1,
    )
    assert (second.drawer_with_sale, second.drawer_without_sale, second.drawer_unexplained) == (
        0,
        1,
        1,
    )
