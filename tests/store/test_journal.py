"""The fiscal journal in the store: chained with each event, and tampering with sqlite3 shows."""

from __future__ import annotations

import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peewee import SqliteDatabase

from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.journal import body_digest
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.core.sale import draft_sale
from appliance.core.tender import Tender
from appliance.errors import DocumentError
from appliance.store.documents import SalesLedger
from appliance.store.journal import ACKED_KEY, FiscalJournal
from appliance.store.payment_attempts import PaymentAttempts
from tests.store.crash_writer import CURRENCY, DEVICE_ID, POLICY, sale_draft, void_draft

pytestmark = pytest.mark.usefixtures("catalog")


def _sqlite3(db_path: Path, sql: str) -> None:
    """Change the database the way someone with shell access would: the sqlite3 tool."""
    subprocess.run(["sqlite3", str(db_path), sql], check=True, capture_output=True, timeout=30)


def _sell(ledger: SalesLedger, products: dict[str, Product], count: int) -> None:
    for _ in range(count):
        ledger.commit(sale_draft(products, [("COLA", 1)]))


def test_every_document_is_chained_in_its_own_commit_with_the_digest_of_its_body(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 2)]))
    void = ledger.commit(void_draft(sale))
    journal = FiscalJournal(db)
    entries = journal.entries()
    assert [(e.number, e.kind) for e in entries] == [(1, "sale"), (2, "void")]
    stored = db.execute_sql("SELECT body FROM document WHERE id = ?", (void.id,)).fetchone()[0]
    event = entries[1].event()
    assert event["document_id"] == void.id and event["sequence"] == void.sequence
    assert event["sha256"] == body_digest(bytes(stored))
    check = journal.verify()
    assert check.ok and (check.entries, check.head_number) == (2, 2)
    assert check.head_hash == entries[1].hash


def test_a_refused_document_leaves_no_entry(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 1)]))
    ledger.commit(void_draft(sale))
    with pytest.raises(DocumentError):
        ledger.commit(void_draft(sale))  # voided already: the whole commit rolls back
    assert [e.kind for e in FiscalJournal(db).entries()] == ["sale", "void"]


def test_each_payment_step_is_chained_with_the_sale_that_settles_it(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    attempts = PaymentAttempts(db)
    cart = Cart(CURRENCY).add(ProductMatch(products["COLA"]), 2)
    request = PaymentRequest(cart.totals(POLICY).total, CURRENCY, "till-1-card")
    attempts.begin(request, cart)
    attempts.answered(
        request,
        PaymentResult("approved", request.merchant_reference, "T-9", "**** 1234", "approved"),
    )
    tender = Tender("card", request.amount, reference=request.merchant_reference)
    draft = draft_sale(cart, POLICY, [tender], device_id=DEVICE_ID, now=datetime.now(UTC))
    ledger.commit(draft)
    entries = FiscalJournal(db).entries()
    steps = [(e.kind, e.event().get("state")) for e in entries]
    assert steps == [
        ("payment", "pending"),
        ("payment", "approved"),
        ("payment", "settled"),
        ("sale", None),
    ]
    assert all("1234" not in e.body.decode() for e in entries)  # no card digits in the chain
    assert FiscalJournal(db).verify().ok


@pytest.mark.parametrize(
    "case",
    [
        (
            "UPDATE journal SET body = replace(body, '\"total\":', '\"total\":1') WHERE number = 3",
            3,
            "does not match its hash",
        ),
        ("DELETE FROM journal WHERE number = 2", 2, "entry 2 is missing"),
        ("UPDATE journal SET body = X'00ff' WHERE number = 3", 3, "does not match its hash"),
        (
            "UPDATE journal SET number = number + 100 WHERE number IN (2, 3);"
            " UPDATE journal SET number = 3 WHERE number = 102;"
            " UPDATE journal SET number = 2 WHERE number = 103",
            2,
            "",
        ),
        (
            "UPDATE document SET body = replace(body, 'Cola 0.5 l', 'Cola 1.5 l')"
            " WHERE sequence = 4",
            4,
            "was changed after it was chained",
        ),
        ("DELETE FROM journal WHERE number = 5", 5, "has no journal entry"),
    ],
    ids=["edit", "delete", "garbage", "reorder", "document-edit", "tail-cut"],
)
def test_a_change_made_with_the_sqlite3_tool_names_the_first_bad_entry(
    db: SqliteDatabase,
    db_path: Path,
    ledger: SalesLedger,
    products: dict[str, Product],
    case: tuple[str, int, str],
) -> None:
    tamper, number, words = case
    _sell(ledger, products, 5)
    assert FiscalJournal(db).verify().ok
    db.close()
    _sqlite3(db_path, tamper)
    db.connect()
    check = FiscalJournal(db).verify()
    assert check.problem is not None
    assert check.problem.number == number
    assert words in check.problem.reason


def test_a_journal_cut_below_what_the_hub_confirmed_is_found(
    db: SqliteDatabase, db_path: Path, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = FiscalJournal(db)
    for n in range(3):
        journal.append("cash_in", {"amount": n})
    db.execute_sql("INSERT INTO meta (key, value) VALUES (?, '3')", (ACKED_KEY,))
    db.close()
    _sqlite3(db_path, "DELETE FROM journal WHERE number = 3")
    db.connect()
    check = FiscalJournal(db).verify()
    assert check.problem is not None and check.problem.number == 3
    assert "the hub confirmed" in check.problem.reason


def test_export_writes_each_entry_and_the_head_hash(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    _sell(ledger, products, 2)
    FiscalJournal(db).append("cash_out", {"amount": 500, "reason": "bank"})
    out = io.StringIO()
    check = FiscalJournal(db).export(out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["number"] for line in lines[:-1]] == [1, 2, 3]
    assert lines[2]["event"] == {"amount": 500, "reason": "bank"}
    assert lines[-1]["head"]["head_hash"] == check.head_hash == lines[2]["hash"]
    assert lines[-1]["head"]["verified"] is True
