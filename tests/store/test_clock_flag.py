"""A document stamped before the clock was known right is flagged, stored so and counted."""

from __future__ import annotations

import ctypes
from datetime import UTC, datetime

import pytest
from peewee import SqliteDatabase

from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.receipt import receipt_for
from appliance.core.sale import draft_sale
from appliance.core.tender import Tender
from appliance.service.clock_check import ClockCheck, Timex, kernel_clock_synchronised
from appliance.store.documents import SalesLedger, decode_document
from tests.store.crash_writer import CURRENCY, DEVICE_ID, POLICY

pytestmark = pytest.mark.usefixtures("catalog")


def _sell(ledger: SalesLedger, products: dict[str, Product]) -> str:
    cart = Cart(CURRENCY).add(ProductMatch(products["COLA"]))
    tender = Tender("cash", cart.totals(POLICY).total)
    draft = draft_sale(cart, POLICY, [tender], device_id=DEVICE_ID, now=datetime.now(UTC))
    return ledger.commit(draft).id


def test_sales_are_flagged_until_the_clock_is_synchronised_and_not_after(
    db: SqliteDatabase, products: dict[str, Product]
) -> None:
    answers = iter([False, False, True])
    ledger = SalesLedger(db, "T", clock_verified=ClockCheck(probe=lambda: next(answers)))

    early = [ledger.get(_sell(ledger, products)) for _ in range(2)]
    later = [ledger.get(_sell(ledger, products)) for _ in range(2)]  # probed once: True

    assert [s.clock_verified for s in early if s] == [False, False]
    assert [s.clock_verified for s in later if s] == [True, True]
    assert ledger.clock_unverified_count() == 2
    body = db.execute_sql("SELECT body FROM document WHERE id = ?", (early[0].id,)).fetchone()[0]  # type: ignore[union-attr]
    assert decode_document(bytes(body)).clock_verified is False
    receipt = receipt_for(early[0], store_name="Shop", locale="de_DE")  # type: ignore[arg-type]
    assert receipt.created_at.endswith("(time not verified)")


def test_a_trusted_clock_is_never_probed(db: SqliteDatabase, products: dict[str, Product]) -> None:
    def probe() -> bool:
        raise AssertionError("a trusted clock is not asked")

    ledger = SalesLedger(db, "T", clock_verified=ClockCheck(trusted=True, probe=probe))

    sale = ledger.get(_sell(ledger, products))

    assert sale is not None and sale.clock_verified
    assert ledger.clock_unverified_count() == 0


def test_the_kernel_is_asked_with_the_kernels_own_struct_timex() -> None:
    """adjtimex(2) writes a whole struct timex: a wrong layout would corrupt memory."""
    assert ctypes.sizeof(Timex) == (208 if ctypes.sizeof(ctypes.c_long) == 8 else 128)
    assert isinstance(kernel_clock_synchronised(), bool)  # read only: the clock is untouched
