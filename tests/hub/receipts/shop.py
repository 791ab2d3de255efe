"""Sales as a kiosk commits them (a real device store), and the hub ingesting them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from peewee import Database

from appliance.core.cart import Cart
from appliance.core.catalog import ProductMatch
from appliance.core.sale import Sale, draft_sale
from appliance.core.tender import Tender
from appliance.mqtt.payloads import SaleEnvelope, SalesBatch
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger, encode_document
from appliance.store.migrations import migrate
from hub.ingest import SalesIngest
from tests.store.crash_writer import (
    BREAD,
    COLA,
    CURRENCY,
    POLICY,
    PRODUCTS,
    RECEIPT_PREFIX,
    STOCK,
)

DEVICE = "kiosk-7"


class Kiosk:
    """A device's own store: sales are drafted and committed as the checkout does."""

    def __init__(self, folder: Path, device: str = DEVICE) -> None:
        self.device = device
        self.db = open_database(folder / device / "appliance.db")
        migrate(self.db)
        SqliteCatalog(self.db).upsert((p, STOCK[p.sku]) for p in PRODUCTS)
        self.ledger = SalesLedger(self.db, RECEIPT_PREFIX)

    def sell(self, now: datetime | None = None, *, card: bool = True) -> Sale:
        """Two colas and a bread, paid by card (or cash), committed: the sale the QR shows."""
        cart = Cart(CURRENCY).add(ProductMatch(COLA)).add(ProductMatch(COLA))
        cart = cart.add(ProductMatch(BREAD))
        total = cart.totals(POLICY).total
        tender = Tender("card", total, card_mask="**** 4242") if card else Tender("cash", total)
        when = now or datetime.now(UTC)
        draft = draft_sale(cart, POLICY, [tender], device_id=self.device, now=when)
        return self.ledger.commit(draft)

    def close(self) -> None:
        """Close the device's database."""
        self.db.close()


def send(hub: Database, *sales: Sale, device: str = DEVICE) -> None:
    """The sales through the hub's real ingest, as the device's uploader batches them."""
    batch = SalesBatch(
        device=device,
        sales=[
            SaleEnvelope(seq=s.sequence, sale_id=s.id, document=msgspec.Raw(encode_document(s)))
            for s in sales
        ],
    )
    result = SalesIngest(hub).ingest(device, batch)
    assert result.inserted == len(sales), result


def without_token(sale: Sale) -> Sale:
    """The sale as firmware from before e-receipt tokens committed it."""
    return dataclasses.replace(sale, receipt_token="")
