"""The receipt PDF: names fit beside their amounts, any European name prints, long ones page."""

from __future__ import annotations

import re

from reportlab.pdfbase.pdfmetrics import stringWidth

from hub.receipts.lookup import StoreDetails
from hub.receipts.pdf import GAP, MAX_PAGE_HEIGHT, SIZE, WIDTH, layout, receipt_pdf
from hub.receipts.view import LineView, ReceiptView, TaxView, TenderView
from tests.hub.receipts.pdf_text import pdf_text


def receipt(*names: str) -> ReceiptView:
    """A receipt of one line per name, each at 1.00."""
    return ReceiptView(
        title="Receipt",
        store=StoreDetails("Sklep Żabka", ("ul. Świętokrzyska 1", "00-001 Warszawa"), "PL1"),
        receipt_number="K01-000001",
        date="2025-03-01 12:00",
        device="kiosk-7",
        lines=tuple(LineView(name, "1 × €1.00", "€1.00", "") for name in names),
        taxes=(TaxView("standard 23 %", "€0.81", "€0.19", "€1.00"),),
        tenders=(TenderView("Card", "€1.00", "•••• 4242"),),
        discount_total="",
        rounding="",
        total="€1.00",
        prices_include_tax=True,
    )


def test_a_long_name_is_wrapped_clear_of_its_amount() -> None:
    name = "Extra long organic wholegrain sourdough loaf, 800 g"  # 51 characters
    assert len(name) == 51
    view = receipt(name + " " + "W" * 60)

    texts = [t for page in layout(view) for t in page.texts]

    amounts = [t for t in texts if t.text == "€1.00" and t.x > WIDTH / 2]
    for amount in amounts:
        beside = [t for t in texts if t.y == amount.y and t is not amount]
        for text in beside:
            assert text.x + stringWidth(text.text, text.font, SIZE) <= amount.x - GAP + 0.01
    for text in texts:
        assert text.x + stringWidth(text.text, text.font, SIZE) <= WIDTH
    shown = pdf_text(receipt_pdf(view))
    assert "Extra long organic wholegrain" in shown and "W" * 15 in shown


def test_polish_german_and_czech_names_come_back_from_the_pdf() -> None:
    names = ("Żurek łódzki", "Śliwki węgierskie", "Käse Weißbier Grüße", "Čočka Řecká")

    shown = pdf_text(receipt_pdf(receipt(*names)))

    for text in (*names, "Sklep Żabka", "ul. Świętokrzyska 1", "€1.00", "•••• 4242"):
        assert text in shown, text
    assert "\ufffd" not in shown


def test_a_receipt_of_2000_lines_has_pages_of_bounded_height() -> None:
    view = receipt(*(f"Item {n}" for n in range(2000)))

    pages = layout(view)
    pdf = receipt_pdf(view)

    assert len(pages) > 1 and all(p.height <= MAX_PAGE_HEIGHT for p in pages)
    boxes = [float(h) for h in re.findall(rb"/MediaBox \[ 0 0 [\d.]+ ([\d.]+) \]", pdf)]
    assert len(boxes) == len(pages) and max(boxes) <= MAX_PAGE_HEIGHT
    shown = pdf_text(pdf).splitlines()
    assert shown.count("Item 0") == 1 and shown.count("Item 1999") == 1
    assert shown.index("Item 0") < shown.index("Item 1999")
