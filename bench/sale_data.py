"""Sale drafts made like the checkout makes them, and the raw-sqlite3 twin of a ledger commit."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.ids import receipt_number
from appliance.core.sale import SaleDraft, draft_sale
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from appliance.store import documents, journal
from appliance.store.documents import DocumentRows, document_rows
from bench import fixtures

DEVICE_ID = "bench-0001"
RECEIPT_PREFIX = "B01"


RawSale = DocumentRows
RAW_HASH = "0" * 64


def build_drafts(products: list[Product], count: int) -> list[SaleDraft]:
    """Sale drafts made the way the checkout makes them: three scanned items, paid by card."""
    policy = TaxPolicy.of(fixtures.TAX_RATES)
    drafts = []
    for i in range(count):
        cart = Cart(fixtures.CURRENCY)
        for k in range(3):
            cart = cart.add(ProductMatch(products[(3 * i + k) % len(products)]))
        total = cart.totals(policy).total
        drafts.append(
            draft_sale(
                cart,
                policy,
                [Tender("card", total)],
                device_id=DEVICE_ID,
                now=datetime.now(UTC),
            )
        )
    return drafts


def raw_sale(draft: SaleDraft, sequence: int) -> RawSale:
    """The rows SalesLedger.commit writes for `draft` at `sequence`, with the same JSON body."""
    return document_rows(draft.seal(sequence, receipt_number(RECEIPT_PREFIX, sequence)))


def commit_raw(connection: sqlite3.Connection, sale: RawSale) -> None:
    """One sale in one BEGIN IMMEDIATE ... COMMIT, with the ledger's own SQL statements."""
    # The ledger's module-level SQL is reused on purpose: the baseline must run the same text.
    cursor = connection.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    cursor.execute(documents._NEXT_SEQUENCE).fetchone()
    cursor.execute(documents._INSERT_DOCUMENT, sale.document)
    cursor.executemany(documents._INSERT_LINE, sale.lines)
    cursor.executemany(documents._INSERT_MOVEMENT, sale.movements)
    cursor.executemany(documents._UPDATE_STOCK, sale.stock)
    cursor.execute(documents._INSERT_OUTBOX, sale.outbox)
    # The fiscal journal's writes with a ready-made entry: ours also hashes, raw does not.
    cursor.execute(journal._LINK).fetchone()
    sequence = sale.outbox[0]
    cursor.execute(journal._INSERT, (sequence, "sale", sale.outbox[3], b"{}", RAW_HASH, RAW_HASH))
    cursor.execute("COMMIT")
