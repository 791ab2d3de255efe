"""The kiosk hears of a stored sale through SaleCommitted and reads nothing back in that frame."""

from __future__ import annotations

import time
from typing import Any

from appliance.core.events import SaleCommitted
from appliance.core.tender import Tender
from appliance.errors import ApplianceError
from tests.screens.customer_steps import COFFEE, scan_and_wait
from tests.screens.harness import Kiosk
from tests.sql_trace import ThreadSql


def test_the_screens_take_a_sale_stored_on_the_writer_from_its_event(kiosk: Kiosk) -> None:
    app = kiosk.services.app
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.pump(2)
    heard: list[SaleCommitted] = []
    app.bus.subscribe(SaleCommitted, heard.append)
    outcome: list[Any] = []

    def stored(sale: Any, error: ApplianceError | None) -> None:
        outcome.append(sale if error is None else error)

    tenders = [Tender("card", app.checkout.totals().total)]
    # As the payment screen does: the sale is stored on the writer thread, and the cart,
    # the sale and the write's outcome come back through the bus to this (the main) thread.
    with ThreadSql(app.db) as sql:
        kiosk.app.ctx.writes.run(lambda: app.checkout.pay(tenders), stored)
        deadline = time.monotonic() + 15
        while not outcome:
            assert time.monotonic() < deadline, "the sale was not stored"
            app.bus.drain()
            time.sleep(0.005)
        kiosk.app.session.finished(outcome[0].id)  # the receipt screen offers its receipt
    assert sql.statements == [], "a subscriber read the database on the main thread"
    assert heard[0].sale == outcome[0]
    assert kiosk.app.receipt.receipt_number == outcome[0].receipt_number
    assert app.checkout.cart.is_empty
