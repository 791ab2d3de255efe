"""Migration 11 gives the sales stored before it their e-receipt links, and hashes their tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peewee import Database

from appliance.core.sale import Sale
from appliance.store.documents import encode_document
from hub.db import open_hub_database
from hub.migrations import MIGRATIONS
from hub.models import Sale as SaleRow
from hub.receipts.lookup import Found, ReceiptRules, find_receipt
from hub.receipts.models import ReceiptToken, token_hash
from tests.hub.databases import KINDS
from tests.hub.receipts.shop import DEVICE, Kiosk, without_token
from tests.postgres import PostgresCluster


@pytest.fixture(params=KINDS)
def hub_at_10(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A hub database at schema 10, before migration 11."""
    if request.param == "sqlite":
        db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    else:
        server: PostgresCluster = request.getfixturevalue("postgres")
        db = open_hub_database(server.new_database())
    for migration in MIGRATIONS[:10]:
        assert migration.version <= 10
        with db.atomic():
            migration.apply(db)
    yield db
    db.close()


def stored(db: Database, sale: Sale, document: bytes) -> None:
    """The sale as a hub before migration 11 stored it: its document as sent."""
    SaleRow.insert(
        device=DEVICE,
        sale_id=sale.id,
        seq=sale.sequence,
        kind=sale.kind,
        created_at=datetime.now(UTC).replace(tzinfo=None),
        total=sale.total,
        currency=sale.currency,
        document=document.decode(),
        received_at=datetime.now(UTC).replace(tzinfo=None),
    ).execute(db)


def test_migration_11_links_the_sales_already_stored_and_keeps_only_hashes(
    hub_at_10: Database, kiosk: Kiosk
) -> None:
    db = hub_at_10
    sales = [kiosk.sell() for _ in range(3)]
    older = kiosk.sell()
    for sale in sales:
        stored(db, sale, encode_document(sale))
    stored(db, older, encode_document(without_token(older)))
    broken = kiosk.sell()
    stored(db, broken, encode_document(broken).replace(b'"receipt_token":"', b'"receipt_token":"!'))

    with db.atomic():
        MIGRATIONS[10].apply(db)

    assert MIGRATIONS[10].version == 11
    kept = {h for (h,) in ReceiptToken.select(ReceiptToken.token_hash).tuples().execute(db)}
    assert kept == {token_hash(s.receipt_token) for s in sales}
    documents = "".join(d for (d,) in SaleRow.select(SaleRow.document).tuples().execute(db))
    assert not any(s.receipt_token in documents for s in sales)
    for sale in sales:
        found = find_receipt(db, sale.receipt_token, datetime.now(UTC), ReceiptRules())
        assert isinstance(found, Found) and found.document.id == sale.id
