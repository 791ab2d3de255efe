"""The hub keeps a sale's token only as its hash: in the token table and in the document."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from peewee import Database

from appliance.core.sale import Sale
from appliance.mqtt.payloads import SaleEnvelope, SalesBatch
from appliance.store.documents import encode_document
from hub.api.sales import sale_view
from hub.ingest import SalesIngest
from hub.models import Sale as SaleRow
from hub.models import SaleRejection
from hub.receipts.lookup import Found, ReceiptRules, find_receipt
from hub.receipts.models import token_hash
from hub.stock_levels import sold_lines
from tests.hub.receipts.shop import DEVICE, Kiosk


def batch(*documents: tuple[Sale, bytes]) -> SalesBatch:
    """The sales as the device's uploader sends them, each with the given document bytes."""
    return SalesBatch(
        device=DEVICE,
        sales=[
            SaleEnvelope(seq=s.sequence, sale_id=s.id, document=msgspec.Raw(raw))
            for s, raw in documents
        ],
    )


def test_the_stored_document_holds_the_tokens_hash_and_every_reader_still_reads_it(
    receipt_db: Database, kiosk: Kiosk
) -> None:
    sale = kiosk.sell()
    raw = encode_document(sale)
    told: list[Mapping[str, Any]] = []

    def on_stored(device: str, rows: Sequence[Mapping[str, Any]]) -> None:
        told.extend(rows)

    SalesIngest(receipt_db, on_stored=on_stored).ingest(DEVICE, batch((sale, raw)))

    row = SaleRow.select().dicts().execute(receipt_db)[0]
    assert sale.receipt_token.encode() in raw
    assert sale.receipt_token not in row["document"]
    assert f'"receipt_token":"sha256:{token_hash(sale.receipt_token)}"' in row["document"]
    assert [sale.receipt_token in str(r["document"]) for r in told] == [False]  # webhooks
    assert sale_view(row).total == sale.total  # the API
    assert [line.sku for line in sold_lines(row["document"])] == [x.sku for x in sale.lines]
    found = find_receipt(receipt_db, sale.receipt_token, datetime.now(UTC), ReceiptRules())
    assert isinstance(found, Found) and found.document.id == sale.id


def test_a_resend_of_a_sale_with_a_token_is_a_duplicate_not_a_conflict(
    receipt_db: Database, kiosk: Kiosk
) -> None:
    first, second = kiosk.sell(), kiosk.sell()
    ingest = SalesIngest(receipt_db)
    ingest.ingest(DEVICE, batch((first, encode_document(first))))

    # The stored one again, and in the same batch a new one, then that one again.
    again = batch(*((s, encode_document(s)) for s in (first, second, second)))
    result = ingest.ingest(DEVICE, again)

    assert (result.inserted, result.duplicates, result.conflicts) == (1, 2, ())
    assert SaleRejection.select().count(receipt_db) == 0


def test_a_rejected_resend_is_kept_without_the_token(receipt_db: Database, kiosk: Kiosk) -> None:
    sale = kiosk.sell()
    ingest = SalesIngest(receipt_db)
    ingest.ingest(DEVICE, batch((sale, encode_document(sale))))
    changed = encode_document(sale).replace(b'"staff":""', b'"staff":"someone else"')

    result = ingest.ingest(DEVICE, batch((sale, changed)))

    assert result.conflicts == (sale.sequence,)
    (kept,) = SaleRejection.select(SaleRejection.document).tuples().execute(receipt_db)
    assert sale.receipt_token.encode() not in bytes(kept[0])
    assert b"someone else" in bytes(kept[0])
