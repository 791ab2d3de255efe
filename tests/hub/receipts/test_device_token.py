"""The token is made by the device when a sale commits, and the kiosk's QR link carries it."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from appliance.core.ids import UNKNOWN_TOKEN_TIME, new_receipt_token, receipt_token_time
from appliance.mqtt.payloads import SaleDocument
from appliance.store.documents import SalesLedger, encode_document
from tests.hub.receipts.shop import Kiosk, without_token
from tests.store.crash_writer import RECEIPT_PREFIX

TEMPLATE = "https://hub.example/r/{token}?n={receipt}"


def test_each_sale_gets_its_own_token_of_128_random_bits_and_its_moment(kiosk: Kiosk) -> None:
    when = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
    sales = [kiosk.sell(when) for _ in range(50)]
    tokens = {s.receipt_token for s in sales}

    assert len(tokens) == 50
    assert all(receipt_token_time(t) == when for t in tokens)
    assert all(len(t) == 30 for t in tokens)  # 8 hex digits of time, 22 chars of 16 bytes
    stored = kiosk.ledger.get(sales[0].id)
    assert stored is not None and stored.receipt_token == sales[0].receipt_token


def test_the_document_carries_the_token_and_older_documents_still_decode(kiosk: Kiosk) -> None:
    sale = kiosk.sell()
    decode = msgspec.json.Decoder(SaleDocument).decode

    assert decode(encode_document(sale)).receipt_token == sale.receipt_token
    assert decode(encode_document(without_token(sale))).receipt_token == ""


def test_the_kiosks_qr_link_carries_that_sales_token(kiosk: Kiosk) -> None:
    from appliance.screens.customer.qr_receipt import receipt_link

    sale = kiosk.sell()

    link = receipt_link(TEMPLATE, sale)

    assert link == f"https://hub.example/r/{sale.receipt_token}?n={sale.receipt_number}"
    assert receipt_link("https://hub.example/{id}", sale) == f"https://hub.example/{sale.id}"
    # No token (a sale from before tokens): no link that would lead nowhere.
    assert receipt_link(TEMPLATE, without_token(sale)) is None


def test_tokens_made_apart_differ_and_tell_their_time() -> None:
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    assert new_receipt_token(moment) != new_receipt_token(moment)
    assert receipt_token_time(new_receipt_token(moment.replace(tzinfo=None))) == moment
    assert receipt_token_time("short") is None


def test_a_sale_made_before_the_clock_was_verified_gets_a_token_of_unknown_time(
    kiosk: Kiosk,
) -> None:
    kiosk.ledger = SalesLedger(kiosk.db, RECEIPT_PREFIX, clock_verified=lambda: False)

    sale = kiosk.sell(datetime(2001, 1, 1, tzinfo=UTC))  # a Pi without RTC, booted offline

    assert not sale.clock_verified
    assert receipt_token_time(sale.receipt_token) == UNKNOWN_TOKEN_TIME
    assert receipt_token_time(new_receipt_token(None)) == UNKNOWN_TOKEN_TIME
