"""The sample shop the store tests sell from, and the child side of the crash-safety test.

`run_child` runs in a process forked by tests/store/test_crash_safety.py: it opens the
database itself (the parent never holds it open across a fork), commits documents as fast
as it can and reports every step on a pipe, one short line per `os.write` (atomic for a
pipe), until the parent kills it with SIGKILL:

    S                      started: the database is open, documents come next
    B <document id>        about to call SalesLedger.commit with this draft
    T <statement>          SQLite began running a statement (sqlite3 trace callback)
    C <sequence> <id>      commit returned: the document is durable
    E <traceback>          the child failed (the test reports it); the child exits 1

Because `T COMMIT` is written before SQLite runs COMMIT, a kill that lands after
`T BEGIN IMMEDIATE` and before `T COMMIT` interrupted an open write transaction: that
document must not exist afterwards.
"""

from __future__ import annotations

import os
import random
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import NoReturn

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.money import Money
from appliance.core.sale import Sale, SaleDraft, draft_refund, draft_sale, draft_void
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger

DEVICE_ID = "till-01"
RECEIPT_PREFIX = "K01"
CURRENCY = "EUR"
STAFF = "ann"
POLICY = TaxPolicy.of({"standard": 2000, "reduced": 1000})


def ean13(body: str) -> str:
    """A valid EAN-13 for a 12-digit body, normalised to the 14-digit lookup key."""
    return normalize_gtin(body + gtin_check_digit(body))


COLA = Product(
    sku="COLA",
    name="Cola 0.5 l",
    price=Money(199, CURRENCY),
    tax_class="standard",
    category="drinks",
    names=(("de", "Cola 0,5 l"), ("fr", "Cola 0,5 l")),
    barcodes=(ean13("400638133393"),),
)
BEER = Product(
    sku="BEER",
    name="Lager 0.5 l",
    price=Money(129, CURRENCY),
    tax_class="standard",
    category="drinks",
    age_restriction=18,
    barcodes=(ean13("590123412345"),),
)
BAG = Product(
    sku="BAG",
    name="Carrier bag",
    price=Money(20, CURRENCY),
    tax_class="standard",
    stock_tracked=False,
    barcodes=(ean13("401234500009"),),
)
BREAD = Product(
    sku="BREAD",
    name="Rye bread",
    price=Money(349, CURRENCY),
    tax_class="reduced",
    category="bakery",
    barcodes=tuple(sorted((ean13("401234500001"), ean13("401234500002")))),
)
PRODUCTS: tuple[Product, ...] = (COLA, BEER, BAG, BREAD)
# Stock levels the catalog starts with; None leaves a product's stock alone.
STOCK: Mapping[str, int | None] = {"COLA": 50, "BEER": 24, "BAG": None, "BREAD": 10}


def sale_draft(
    products: Mapping[str, Product],
    items: Sequence[tuple[str, int]],
    *,
    now: datetime | None = None,
    staff: str = STAFF,
) -> SaleDraft:
    """A card-paid sale of (sku, quantity) items; age checks approved by `staff`."""
    cart = Cart(CURRENCY)
    for sku, quantity in items:
        cart = cart.add(ProductMatch(products[sku]), quantity)
    if cart.pending_age_checks:
        cart = cart.approve_age(staff)
    total = cart.totals(POLICY).total
    return draft_sale(
        cart,
        POLICY,
        [Tender("card", total)],
        device_id=DEVICE_ID,
        now=now or datetime.now(UTC),
        staff=staff,
    )


def refund_draft(
    original: Sale,
    quantities: Mapping[int, int],
    *,
    already_refunded: Mapping[int, int] | None = None,
    now: datetime | None = None,
) -> SaleDraft:
    """A card refund of {line_no: quantity}; lines without discounts, so amounts are exact."""
    by_no = {line.line_no: line for line in original.lines}
    gross = sum(by_no[n].unit_price * q for n, q in quantities.items())
    return draft_refund(
        original,
        quantities,
        [Tender("card", -gross)],
        already_refunded=already_refunded or {},
        device_id=DEVICE_ID,
        now=now or datetime.now(UTC),
        staff=STAFF,
        reason="customer return",
    )


def void_draft(original: Sale, *, now: datetime | None = None) -> SaleDraft:
    """A void of the whole sale by the usual staff member."""
    return draft_void(
        original, device_id=DEVICE_ID, now=now or datetime.now(UTC), staff=STAFF, reason="mistake"
    )


def _next_draft(
    rng: random.Random, products: Mapping[str, Product], fresh: list[Sale]
) -> SaleDraft:
    """Mostly sales of 1-4 products; now and then a void or a refund of an untouched sale."""
    roll = rng.random()
    if fresh and roll < 0.08:
        return void_draft(fresh.pop(rng.randrange(len(fresh))))
    if fresh and roll < 0.16:
        original = fresh.pop(rng.randrange(len(fresh)))
        line = rng.choice(original.lines)
        return refund_draft(original, {line.line_no: rng.randint(1, line.quantity)})
    skus = rng.sample(sorted(products), rng.randint(1, len(products)))
    return sale_draft(products, [(sku, rng.randint(1, 3)) for sku in skus])


def run_child(db_path: str, out_fd: int, seed: int) -> NoReturn:
    """Commit documents until killed; never returns (leaves with os._exit)."""
    code = 0
    try:
        rng = random.Random(seed)
        db = open_database(db_path)
        catalog = SqliteCatalog(db)
        products = {p.sku: p for p in (catalog.by_sku(x.sku) for x in PRODUCTS) if p}
        ledger = SalesLedger(db, RECEIPT_PREFIX)

        def trace(statement: str) -> None:
            os.write(out_fd, b"T " + statement[:32].encode() + b"\n")

        if rng.random() < 0.5:
            # Checkpoint after almost every commit, so kills also land inside checkpoints.
            db.execute_sql("PRAGMA wal_autocheckpoint = 4")
        db.connection().set_trace_callback(trace)
        os.write(out_fd, b"S\n")
        fresh: list[Sale] = []
        while True:
            draft = _next_draft(rng, products, fresh)
            os.write(out_fd, f"B {draft.id}\n".encode())
            sale = ledger.commit(draft)
            os.write(out_fd, f"C {sale.sequence} {sale.id}\n".encode())
            if sale.kind == "sale":
                fresh.append(sale)
    except BaseException:
        code = 1
        text = traceback.format_exc().replace("\n", " | ")
        os.write(out_fd, f"E {text}\n".encode())
    finally:
        os._exit(code)
