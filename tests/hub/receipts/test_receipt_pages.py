"""/r/<token>: the one sale a kiosk's QR link names, as a page and a PDF, on both databases."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.testing import TestClient
from peewee import Database

from appliance.core.ids import new_receipt_token
from hub.api.app import WebOptions, create_app
from hub.receipts.lookup import ReceiptRules, StoreDetails
from hub.receipts.models import ReceiptToken
from hub.stores import assign_device
from tests.hub.receipts.pdf_text import pdf_text
from tests.hub.receipts.shop import DEVICE, Kiosk, send, without_token

RULES = ReceiptRules(
    stores={"berlin": StoreDetails("Corner Shop", ("Hauptstr. 1", "10115 Berlin"), "DE123")}
)


@pytest.fixture
def client(receipt_db: Database) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The web app `appliance-hub web` serves, with store details for "berlin"."""
    with TestClient(create_app(receipt_db, options=WebOptions(receipts=RULES))) as test_client:
        yield test_client


def test_the_link_opens_its_sale_with_lines_taxes_card_and_store(
    receipt_db: Database,
    kiosk: Kiosk,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    assign_device(receipt_db, DEVICE, "berlin")
    sale = kiosk.sell()
    send(receipt_db, sale)

    page = client.get(f"/r/{sale.receipt_token}")

    assert page.status_code == 200
    text = page.text
    shown = ("Corner Shop", "Hauptstr. 1", "DE123", sale.receipt_number, "Cola 0.5 l",
             "Rye bread", "2 × €1.99", "€7.47", "•••• 4242", "standard 20 %", "€0.66")  # fmt: skip
    for text_shown in shown:
        assert text_shown in text, text_shown
    assert "4242" in text and "**** 4242" not in text
    assert "<script" not in text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
    assert page.headers["cache-control"] == "no-store"


def test_the_pdf_is_a_pdf_of_that_sale(
    receipt_db: Database,
    kiosk: Kiosk,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    sale = kiosk.sell()
    send(receipt_db, sale)

    pdf = client.get(f"/r/{sale.receipt_token}/receipt.pdf")

    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    text = pdf_text(pdf.content)
    assert "Total" in text and "€7.47" in text and sale.receipt_number in text
    assert "Cola 0.5 l" in text and "4242" in text


def test_a_token_opens_only_its_own_sale(
    receipt_db: Database,
    kiosk: Kiosk,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    first, second = kiosk.sell(), kiosk.sell(card=False)
    send(receipt_db, first, second)

    one = client.get(f"/r/{first.receipt_token}").text
    two = client.get(f"/r/{second.receipt_token}").text

    assert first.receipt_number in one and second.receipt_number not in one
    assert second.receipt_number in two and first.receipt_number not in two
    assert first.id not in one  # no ids to follow from the page
    # Only the hash is kept: the table does not hold a working link.
    kept = [
        str(h) for (h,) in ReceiptToken.select(ReceiptToken.token_hash).tuples().execute(receipt_db)
    ]
    assert len(kept) == 2 and first.receipt_token not in kept


def test_unknown_malformed_and_expired_links_get_the_same_404(
    receipt_db: Database,
    tmp_path: Path,
    kiosk: Kiosk,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    old = kiosk.sell(datetime.now(UTC) - timedelta(days=91))  # the default keeps 90 days
    kept = kiosk.sell(datetime.now(UTC) - timedelta(days=89))
    send(receipt_db, old, kept)
    long_gone = new_receipt_token(datetime.now(UTC) - timedelta(days=2))  # never arrived

    answers = [
        client.get(f"/r/{token}")
        for token in (old.receipt_token, long_gone, "nonsense", "z" * 30, kept.receipt_token + "x")
    ]
    pdf = client.get(f"/r/{old.receipt_token}/receipt.pdf")

    assert [a.status_code for a in answers] == [404] * 5
    assert len({a.text for a in answers}) == 1
    assert pdf.status_code == 404 and pdf.text == answers[0].text
    assert client.get(f"/r/{kept.receipt_token}").status_code == 200


def test_an_unverified_clock_counts_from_arrival(
    receipt_db: Database,
    kiosk: Kiosk,
    client: TestClient,  # type: ignore[type-arg]
) -> None:

    sale = kiosk.sell(datetime(1970, 1, 2, tzinfo=UTC))
    send(receipt_db, dataclasses.replace(sale, clock_verified=False))

    assert client.get(f"/r/{sale.receipt_token}").status_code == 200


def test_a_sale_not_arrived_yet_is_waited_for_then_shown(
    receipt_db: Database,
    kiosk: Kiosk,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    sale = kiosk.sell()

    waiting = client.get(f"/r/{sale.receipt_token}")
    no_pdf = client.get(f"/r/{sale.receipt_token}/receipt.pdf")
    send(receipt_db, sale)
    arrived = client.get(f"/r/{sale.receipt_token}")

    assert waiting.status_code == 200
    assert '<meta http-equiv="refresh" content="5">' in waiting.text
    assert "on its way" in waiting.text and sale.receipt_number not in waiting.text
    assert no_pdf.status_code == 404
    assert arrived.status_code == 200 and sale.receipt_number in arrived.text
    assert "refresh" not in arrived.text


def test_a_sale_from_older_firmware_is_stored_without_a_link(
    receipt_db: Database,
    kiosk: Kiosk,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    sale = kiosk.sell()
    send(receipt_db, without_token(sale))

    assert ReceiptToken.select().count(receipt_db) == 0
    # The kiosk would not have shown this link: to the hub it is one it never heard of.
    assert "on its way" in client.get(f"/r/{sale.receipt_token}").text


def test_a_link_made_without_a_verified_clock_waits_for_its_sale(
    receipt_db: Database,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    token = new_receipt_token(None)

    page = client.get(f"/r/{token}")

    assert page.status_code == 200 and "on its way" in page.text
