"""The e-receipt from the kiosk's QR code, opened in a real browser on a phone's width.

`appliance-hub web` runs as a real process on a SQLite hub database. A kiosk's own store
commits a sale; the QR data is made as the receipt screen makes it (`receipt_link` with
the configured `e_receipt_url`). Debian's chromium, headless through playwright, opens
that URL before the sale reaches the hub and is told it is on its way; the sale then goes
through the hub's real ingest, and the page's own refresh brings the receipt up. The PDF
behind the page's link is a PDF with the sale's total in it. A screenshot goes to
tests/artifacts/receipt-phone.png.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from appliance.screens.customer.qr_receipt import receipt_link
from hub.db import open_hub_database
from hub.migrations import migrate
from tests.broker import free_port
from tests.e2e.conftest import Processes
from tests.hub.receipts.pdf_text import pdf_text
from tests.hub.receipts.shop import Kiosk, send

BIN = Path(sys.executable).parent
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PHONE = {"width": 390, "height": 844}  # a common phone's CSS pixels
WAIT_MS = 60_000  # a generous bound on what the page should show; never a timing claim


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_the_qr_link_opens_the_receipt_on_a_phone_once_the_sale_arrives(
    tmp_path: Path, processes: Processes, browser: Any
) -> None:
    db_url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = open_hub_database(db_url)
    migrate(hub)
    port = free_port()
    processes.start(
        str(BIN / "appliance-hub"), "web", "--db", db_url, "--listen", f"127.0.0.1:{port}",
        "--receipt-days", "30", log=tmp_path / "web.log",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{base}/receipt-static/receipt.css", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _until(answers, 60, "appliance-hub web")
    kiosk = Kiosk(tmp_path)
    try:
        sale = kiosk.sell()
        url = receipt_link(f"{base}/r/{{token}}", sale)  # what the QR code holds
        assert url is not None and sale.receipt_token in url

        page = browser.new_page(viewport=PHONE, is_mobile=True)
        page.goto(url)
        page.locator("#waiting").wait_for(timeout=WAIT_MS)
        send(hub, sale)  # the kiosk's uploader batch, through the hub's ingest
        # No reload from here: the waiting page's own refresh must bring the receipt.
        page.locator("#total").wait_for(timeout=WAIT_MS)

        assert page.locator("#total").inner_text() == "€7.47"
        names = page.locator("#lines .name").all_inner_texts()
        assert names == ["Cola 0.5 l", "Rye bread"]
        assert page.locator("#receipt-number").inner_text() == sale.receipt_number
        assert "•••• 4242" in page.locator("main").inner_text()
        # It fits the phone: nothing runs off to the side.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "receipt-phone.png"), full_page=True)

        pdf_url = page.locator("#pdf").evaluate("a => a.href")
        assert pdf_url == f"{url}/receipt.pdf"
        pdf = page.request.get(pdf_url)
        assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
        body = pdf.body()
        assert body.startswith(b"%PDF-") and "€7.47" in pdf_text(body)

        # A guessed neighbour of the link (same moment) opens nothing of this sale.
        guess = sale.receipt_token[:-1] + ("A" if sale.receipt_token[-1] != "A" else "B")
        other = page.request.get(f"{base}/r/{guess}").text()
        assert "on its way" in other and sale.receipt_number not in other
    finally:
        kiosk.close()
        hub.close()
