"""The sales ledger: numbering, atomic commits, round trips, refunds, voids and queries."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from peewee import SqliteDatabase

from appliance.core.catalog import Product
from appliance.core.sale import Sale, SaleDraft
from appliance.core.tender import Tender
from appliance.errors import DocumentError, StoreError
from appliance.mqtt.card_debits import stored_value_references
from appliance.store import documents
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import integrity_problems
from appliance.store.documents import SalesLedger, decode_document, encode_document
from tests.store.conftest import Snapshot
from tests.store.crash_writer import (
    PRODUCTS,
    RECEIPT_PREFIX,
    STOCK,
    refund_draft,
    sale_draft,
    void_draft,
)

T0 = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
SHOP = {p.sku: p for p in PRODUCTS}


def _stock(catalog: SqliteCatalog) -> dict[str, int | None]:
    return {sku: catalog.stock_of(sku) for sku in STOCK}


def _movements(db: SqliteDatabase, document_id: str) -> list[tuple[str, int, str]]:
    rows = db.execute_sql(
        "SELECT sku, delta, reason FROM stock_movement WHERE document_id = ? ORDER BY id",
        (document_id,),
    )
    return [tuple(row) for row in rows.fetchall()]


def test_commits_are_numbered_one_after_another(
    ledger: SalesLedger, products: dict[str, Product]
) -> None:
    assert ledger.count() == 0
    assert ledger.last() is None
    sales = [ledger.commit(sale_draft(products, [("COLA", 1)])) for _ in range(3)]
    assert [s.sequence for s in sales] == [1, 2, 3]
    assert [s.receipt_number for s in sales] == [
        f"{RECEIPT_PREFIX}-000001",
        f"{RECEIPT_PREFIX}-000002",
        f"{RECEIPT_PREFIX}-000003",
    ]
    assert ledger.count() == 3
    assert ledger.last() == sales[-1]


def test_commit_writes_document_lines_movements_stock_and_outbox(
    db: SqliteDatabase, ledger: SalesLedger, catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    draft = sale_draft(products, [("COLA", 2), ("BAG", 1), ("BEER", 1)], now=T0)
    sale = ledger.commit(draft)

    assert isinstance(sale, Sale)
    assert sale.id == draft.id
    assert sale.total == 2 * 199 + 20 + 129
    body = encode_document(sale)
    row = db.execute_sql(
        "SELECT id, sequence, receipt_number, kind, created_at, currency, total, tax_total,"
        " line_count, refers_to, staff, body FROM document"
    ).fetchall()
    assert row == [
        (
            sale.id,
            1,
            f"{RECEIPT_PREFIX}-000001",
            "sale",
            T0.isoformat(),
            "EUR",
            sale.total,
            sale.tax_total,
            3,
            None,
            "ann",
            body,
        )
    ]
    lines = db.execute_sql(
        "SELECT document_id, line_no, sku, quantity, amount, tax_class, tax_rate, refers_to_line"
        " FROM document_line ORDER BY line_no"
    ).fetchall()
    assert lines == [
        (sale.id, 1, "COLA", 2, 398, "standard", 2000, None),
        (sale.id, 2, "BAG", 1, 20, "standard", 2000, None),
        (sale.id, 3, "BEER", 1, 129, "standard", 2000, None),
    ]
    # The carrier bag is not stock-tracked: no movement, no stock change.
    assert _movements(db, sale.id) == [("COLA", -2, "sale"), ("BEER", -1, "sale")]
    assert _stock(catalog) == {"COLA": 48, "BEER": 23, "BAG": 0, "BREAD": 10}
    outbox = db.execute_sql("SELECT sequence, document_id, payload, created_at FROM outbox")
    assert outbox.fetchall() == [(1, sale.id, body, T0.isoformat())]
    assert integrity_problems(db) == []


def test_stored_documents_round_trip_exactly(
    ledger: SalesLedger, products: dict[str, Product]
) -> None:
    first = ledger.commit(sale_draft(products, [("BREAD", 1), ("BEER", 2)]))
    second = ledger.commit(sale_draft(products, [("COLA", 3)], staff="bob"))
    for sale in (first, second):
        by_id = ledger.get(sale.id)
        by_receipt = ledger.by_receipt(sale.receipt_number)
        assert by_id == sale
        assert by_receipt == sale
        assert by_id is not None
        assert encode_document(by_id) == encode_document(sale)
        assert decode_document(encode_document(sale)) == sale
    assert ledger.get("no-such-id") is None
    assert ledger.by_receipt(f"{RECEIPT_PREFIX}-000099") is None
    assert list(ledger.since()) == [first, second]


def _line_without_sku(draft: SaleDraft, _: pytest.MonkeyPatch) -> SaleDraft:
    broken = dataclasses.replace(draft.lines[-1], sku=None)  # type: ignore[arg-type]
    return dataclasses.replace(draft, lines=(*draft.lines[:-1], broken))


def _stock_update_hits_not_null(draft: SaleDraft, monkeypatch: pytest.MonkeyPatch) -> SaleDraft:
    monkeypatch.setattr(
        documents, "_UPDATE_STOCK", "UPDATE product SET stock_qty = NULL + ?1 WHERE sku = ?2"
    )
    return draft


def _outbox_hits_not_null(draft: SaleDraft, monkeypatch: pytest.MonkeyPatch) -> SaleDraft:
    monkeypatch.setattr(
        documents,
        "_INSERT_OUTBOX",
        "INSERT INTO outbox (sequence, document_id, payload, created_at)"
        " VALUES (?1, ?2, ?3, NULLIF(?4, ?4))",
    )
    return draft


@pytest.mark.parametrize(
    "break_it",
    [_line_without_sku, _stock_update_hits_not_null, _outbox_hits_not_null],
    ids=["second-line", "stock-update", "outbox-row"],
)
def test_a_failing_statement_leaves_nothing_of_the_document(
    db: SqliteDatabase,
    ledger: SalesLedger,
    snapshot: Callable[[], Snapshot],
    monkeypatch: pytest.MonkeyPatch,
    break_it: Callable[[SaleDraft, pytest.MonkeyPatch], SaleDraft],
) -> None:
    ledger.commit(sale_draft(SHOP, [("COLA", 1)]))
    before = snapshot()
    draft = break_it(sale_draft(SHOP, [("COLA", 2), ("BREAD", 1), ("BEER", 1)]), monkeypatch)

    with pytest.raises(StoreError, match="could not be stored: NOT NULL") as refused:
        ledger.commit(draft)
    assert isinstance(refused.value.__cause__, sqlite3.IntegrityError)

    assert snapshot() == before, "part of the failed document was kept"
    assert ledger.get(draft.id) is None
    assert not db.in_transaction()
    assert not db.connection().in_transaction
    monkeypatch.undo()
    after = ledger.commit(sale_draft(SHOP, [("BREAD", 1)]))
    assert after.sequence == 2, "the failed commit used up a sequence number"
    assert after.receipt_number == f"{RECEIPT_PREFIX}-000002"


def test_refund_part_then_the_rest(
    db: SqliteDatabase, ledger: SalesLedger, catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 3), ("BREAD", 1)]))
    assert _stock(catalog) == {"COLA": 47, "BEER": 24, "BAG": 0, "BREAD": 9}

    first = ledger.commit(refund_draft(sale, {1: 1}))
    assert first.kind == "refund"
    assert first.references == sale.id
    assert first.total == -199
    assert ledger.refunded_quantities(sale.id) == {1: 1}
    assert _movements(db, first.id) == [("COLA", 1, "refund")]
    assert catalog.stock_of("COLA") == 48

    rest = ledger.commit(
        refund_draft(sale, {1: 2, 2: 1}, already_refunded=ledger.refunded_quantities(sale.id))
    )
    assert rest.sequence == 3
    assert ledger.refunded_quantities(sale.id) == {1: 3, 2: 1}
    assert _stock(catalog) == {"COLA": 50, "BEER": 24, "BAG": 0, "BREAD": 10}
    refunded_lines = db.execute_sql(
        "SELECT line_no, sku, quantity, refers_to_line FROM document_line"
        " WHERE document_id = ? ORDER BY line_no",
        (rest.id,),
    ).fetchall()
    assert refunded_lines == [(1, "COLA", -2, 1), (2, "BREAD", -1, 2)]


def test_over_refund_is_refused_inside_the_transaction(
    ledger: SalesLedger, products: dict[str, Product], snapshot: Callable[[], Snapshot]
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 3), ("BREAD", 1)]))
    ledger.commit(refund_draft(sale, {1: 2}))
    before = snapshot()
    # Built as if nothing had been refunded yet: only the store can see the earlier refund.
    stale = refund_draft(sale, {1: 2}, already_refunded={})

    with pytest.raises(DocumentError, match="refunded"):
        ledger.commit(stale)

    assert snapshot() == before
    assert ledger.refunded_quantities(sale.id) == {1: 2}
    last = ledger.commit(refund_draft(sale, {1: 1, 2: 1}, already_refunded={1: 2}))
    assert last.sequence == 3
    assert ledger.refunded_quantities(sale.id) == {1: 3, 2: 1}


def test_two_refunds_drafted_from_the_same_state_cannot_both_commit(
    ledger: SalesLedger, catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 3)]))
    refunded = ledger.refunded_quantities(sale.id)
    one = refund_draft(sale, {1: 2}, already_refunded=refunded)
    two = refund_draft(sale, {1: 2}, already_refunded=refunded)

    ledger.commit(one)
    with pytest.raises(DocumentError):
        ledger.commit(two)

    assert ledger.get(two.id) is None
    assert ledger.refunded_quantities(sale.id) == {1: 2}
    assert catalog.stock_of("COLA") == 49


def test_void_puts_the_stock_back(
    db: SqliteDatabase, ledger: SalesLedger, catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    start = _stock(catalog)
    sale = ledger.commit(sale_draft(products, [("COLA", 2), ("BAG", 3), ("BEER", 1)]))
    void = ledger.commit(void_draft(sale))
    assert void.kind == "void"
    assert void.total == -sale.total
    assert void.references == sale.id
    assert _movements(db, void.id) == [("COLA", 2, "void"), ("BEER", 1, "void")]
    assert _stock(catalog) == start
    refers = db.execute_sql("SELECT refers_to FROM document WHERE id = ?", (void.id,))
    assert refers.fetchone()[0] == sale.id


def test_void_after_a_refund_is_refused(
    ledger: SalesLedger, products: dict[str, Product], snapshot: Callable[[], Snapshot]
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 2)]))
    ledger.commit(refund_draft(sale, {1: 1}))
    before = snapshot()
    with pytest.raises(DocumentError, match="refunds"):
        ledger.commit(void_draft(sale))
    assert snapshot() == before


def test_a_sale_is_voided_only_once(
    ledger: SalesLedger,
    catalog: SqliteCatalog,
    products: dict[str, Product],
    snapshot: Callable[[], Snapshot],
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 2)]))
    one, two = void_draft(sale), void_draft(sale)
    ledger.commit(one)
    before = snapshot()
    with pytest.raises(DocumentError, match="voided"):
        ledger.commit(two)
    with pytest.raises(DocumentError, match="voided"):
        ledger.commit(refund_draft(sale, {1: 1}))
    assert snapshot() == before
    assert catalog.stock_of("COLA") == 50


def test_corrections_must_refer_to_a_stored_sale(
    ledger: SalesLedger, products: dict[str, Product], snapshot: Callable[[], Snapshot]
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 2)]))
    refund = ledger.commit(refund_draft(sale, {1: 1}))
    before = snapshot()
    unknown = dataclasses.replace(refund_draft(sale, {1: 1}), references="no-such-sale")
    of_a_refund = dataclasses.replace(void_draft(sale), references=refund.id)
    for draft in (unknown, of_a_refund):
        with pytest.raises(DocumentError, match="unknown sale"):
            ledger.commit(draft)
    assert snapshot() == before


@pytest.mark.parametrize(
    "zone", [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))], ids=str
)
def test_since_filters_by_time(
    ledger: SalesLedger, products: dict[str, Product], zone: timezone
) -> None:
    # Made and asked for in another zone than UTC: the filter still goes by the instant.
    times = [T0, T0 + timedelta(minutes=30), T0 + timedelta(hours=1, microseconds=1)]
    sales = [
        ledger.commit(sale_draft(products, [("COLA", 1)], now=t.astimezone(zone))) for t in times
    ]
    assert [s.created_at for s in sales] == times

    def since(moment: datetime) -> list[int]:
        by_zone = [s.sequence for s in ledger.since(moment.astimezone(zone))]
        assert [s.sequence for s in ledger.since(moment)] == by_zone
        return by_zone

    assert [s.sequence for s in ledger.since()] == [1, 2, 3]
    assert since(T0 - timedelta(days=1)) == [1, 2, 3]
    assert since(T0) == [1, 2, 3], "since() is inclusive"
    assert since(T0 + timedelta(microseconds=1)) == [2, 3]
    assert since(T0 + timedelta(minutes=30)) == [2, 3]
    assert since(T0 + timedelta(hours=1)) == [3]
    assert since(T0 + timedelta(hours=2)) == []
    assert list(ledger.since(T0 + timedelta(minutes=30))) == sales[1:]
    # A naive moment is read as UTC.
    assert [s.sequence for s in ledger.since(T0.replace(tzinfo=None) + timedelta(hours=1))] == [3]


def test_the_stored_value_references_of_stored_sales_are_found_from_a_moment(
    ledger: SalesLedger, products: dict[str, Product]
) -> None:
    def paid(reference: str, now: datetime) -> None:
        draft = sale_draft(products, [("COLA", 1)], now=now)
        tenders = (Tender("stored_value", draft.total, reference=reference),)
        ledger.commit(dataclasses.replace(draft, tenders=tenders))

    paid("sv-old", T0)
    paid("sv-new", T0 + timedelta(hours=2))
    ledger.commit(sale_draft(products, [("COLA", 1)], now=T0 + timedelta(hours=3)))  # by card
    since = (T0 + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5)))  # any offset
    assert stored_value_references(ledger.since(since)) == {"sv-new"}
    assert stored_value_references(ledger.since(T0)) == {"sv-old", "sv-new"}
