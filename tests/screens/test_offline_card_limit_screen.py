"""An offline approval past the [payments] limits keeps card off at the kiosk, and the
customer is told why on the payment screen; the staff screen says the same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.drivers.sim.lab import TERMINAL_STEPS
from appliance.screens.i18n import tr
from appliance.settings import parse_settings
from tests.screens.customer_steps import COFFEE, scan_and_wait
from tests.screens.harness import Kiosk, open_kiosk
from tests.screens.test_card_flows import emulator, last_sale, to_card_payment

PAUSED = "Card payments are paused: offline card payments are waiting to be sent"


@pytest.fixture
def kiosk_with_small_offline_limit(tmp_path: Path) -> Iterator[Kiosk]:
    """A kiosk whose terminal is paused once it holds 4.99 of offline approvals (one coffee)."""
    data = tmp_path / "state"
    settings = parse_settings(
        {
            "device": {"id": "sim-0001", "receipt_prefix": "SIM"},
            "database": {"path": str(data / "appliance.db")},
            "store": {"name": "Demo Store", "currency": "EUR", "locale": "de_DE"},
            "payments": {"offline_max_total": 499},
        },
        source="test",
    )
    with open_kiosk(tmp_path, settings=settings) as kiosk:
        yield kiosk


def test_past_the_offline_limit_card_is_off_and_the_customer_is_told_why(
    kiosk_with_small_offline_limit: Kiosk,
) -> None:
    kiosk = kiosk_with_small_offline_limit
    emulator(kiosk).script(TERMINAL_STEPS["offline"])  # the terminal approves offline
    to_card_payment(kiosk)
    kiosk.tap_text(tr._("Card"))
    kiosk.wait_for_screen("receipt")
    assert [t.kind for t in last_sale(kiosk).tenders] == ["card"]
    gate = kiosk.services.app.card_gate
    assert gate is not None
    kiosk.wait_for(lambda: not gate.availability.offered, what="card paused")
    assert gate.availability.reason == PAUSED

    kiosk.app.session.go("shop")  # the next customer
    kiosk.wait_for_screen("shop")
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.tap_text(tr._("Pay"))
    kiosk.wait_for_screen("payment")

    payment = kiosk.app.payment
    assert not payment.card_ready
    expected = tr._("Card payment is not available now: {reason}").format(reason=tr.message(PAUSED))
    kiosk.wait_for(lambda: payment.notice == expected, what="the reason on screen")
    kiosk.screenshot("customer-payment-offline-limit")
