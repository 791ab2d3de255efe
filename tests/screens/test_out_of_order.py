"""A kiosk whose data partition runs short: the sale in progress ends, then "out of order"."""

from __future__ import annotations

from pathlib import Path

import msgspec

from tests.disks import small_tmpfs
from tests.screens.harness import kiosk_settings, open_kiosk

COFFEE = "4006381333931"
WATER = "5000112548129"  # not the coffee: a read right after the last would be a re-read
MIB = 1024 * 1024
REFUSED = "This checkout is out of order. Please ask a member of staff."


def test_a_kiosk_short_of_space_finishes_the_sale_then_sends_customers_to_staff(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "data", 8 * 1024) as disk:
        settings = kiosk_settings(disk.path)
        database = msgspec.structs.replace(settings.database, reserve_mb=2)
        settings = msgspec.structs.replace(settings, database=database)
        with open_kiosk(tmp_path, settings=settings) as kiosk:
            storage = kiosk.services.app.storage
            kiosk.scan(COFFEE)
            kiosk.wait_for_screen("shop")
            filler = disk.fill(leave_bytes=1 * MIB)
            storage.check()
            kiosk.pump(2)
            assert kiosk.screen == "shop", "the customer's sale is not interrupted"

            kiosk.tap_text("Pay")
            kiosk.wait_for_screen("payment")
            kiosk.tap_text("Card")  # the terminal emulator approves: journal, then the sale
            kiosk.wait_for_screen("receipt")
            assert kiosk.services.app.ledger.count() == 1
            kiosk.tap_text("Print")
            kiosk.wait_for_screen("thanks")
            kiosk.tap_text("Thank you for shopping with us!")
            kiosk.wait_for_screen("out_of_order")
            kiosk.find_text("This checkout is out of order")
            problem = kiosk.app.session.storage_problem
            assert "storage low" in problem and "MiB free" in problem and "filler" in problem
            kiosk.find_text(problem)  # staff read why on the same screen
            kiosk.screenshot("customer-out_of_order")

            kiosk.scan(COFFEE)
            kiosk.wait_for(lambda: kiosk.app.session.message == REFUSED, what="the refusal")
            assert kiosk.services.app.checkout.cart.is_empty

            filler.unlink()
            storage.check()
            kiosk.wait_for_screen("welcome")
            kiosk.scan(WATER)
            kiosk.wait_for_screen("shop")
