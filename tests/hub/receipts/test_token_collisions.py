"""A token sent with two sales opens neither: a device that saw a QR code cannot take it over."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peewee import Database

from hub.receipts.lookup import ReceiptRules, find_receipt
from hub.receipts.models import ReceiptToken
from tests.hub.receipts.shop import Kiosk, send


def test_a_token_sent_first_by_another_device_opens_neither_sale(
    receipt_db: Database, kiosk: Kiosk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rogue = Kiosk(tmp_path, device="kiosk-9")
    try:
        sale = kiosk.sell()
        copied = dataclasses.replace(rogue.sell(), receipt_token=sale.receipt_token)

        send(receipt_db, copied, device="kiosk-9")  # before the customer's sale arrives
        with caplog.at_level(logging.WARNING, logger="hub.receipts.models"):
            send(receipt_db, sale)
        late = dataclasses.replace(rogue.sell(), receipt_token=sale.receipt_token)
        send(receipt_db, late, device="kiosk-9")
    finally:
        rogue.close()

    now = datetime.now(UTC)
    assert find_receipt(receipt_db, sale.receipt_token, now, ReceiptRules()) is None
    assert ReceiptToken.select().count(receipt_db) == 1
    assert "claimed by sale" in caplog.text and "kiosk-9" in caplog.text


def test_two_sales_of_one_batch_with_one_token_open_neither(
    receipt_db: Database, kiosk: Kiosk
) -> None:
    first = kiosk.sell()
    second = dataclasses.replace(kiosk.sell(), receipt_token=first.receipt_token)
    third = kiosk.sell()

    send(receipt_db, first, second, third)

    now = datetime.now(UTC)
    assert find_receipt(receipt_db, first.receipt_token, now, ReceiptRules()) is None
    assert find_receipt(receipt_db, third.receipt_token, now, ReceiptRules()) is not None
