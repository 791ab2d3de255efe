"""The bagging-area check at the kiosk: the real app offscreen, the bagging scale on its pty.

The bagging scale is the real SerialScale asking a second SimScale over a pty; a product
with an expected weight reaches the kiosk as the hub sends it (a catalog delta).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from kivy.uix.widget import Widget

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.drivers.sim.scale import SimScale
from appliance.mqtt.catalog_products import payload_from_product
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.payloads import CatalogDelta
from appliance.screens.i18n import tr
from appliance.service.bagging_desk import BaggingDesk
from appliance.service.demo import DEMO_CASHIER_BADGE
from appliance.settings import parse_settings
from tests.screens.customer_steps import scan_and_wait, tap_card
from tests.screens.harness import Kiosk, open_kiosk

TEA_SKU = "TEA-100"
TEA_NAME = "Green tea 100 g"
TEA = "426012345088" + gtin_check_digit("426012345088")
TEA_GRAMS = 130  # the box with its tea
UNEXPECTED = "Unexpected item in the bagging area: please remove it, or wait for help."


def bagging_kiosk(tmp_path: Path, mode: str) -> Iterator[Kiosk]:
    """A kiosk whose store checks the bagging area in `mode`, quick to decide for tests."""
    settings = parse_settings(
        {
            "device": {"id": "sim-0001", "receipt_prefix": "SIM"},
            "database": {"path": str(tmp_path / "state" / "appliance.db")},
            "store": {"name": "Demo Store", "currency": "EUR", "locale": "de_DE"},
            "bagging": {"mode": mode, "alert_seconds": 0.5},
        },
        source="test",
    )
    with open_kiosk(tmp_path, settings=settings) as kiosk:
        yield kiosk


@pytest.fixture
def enforcing(tmp_path: Path) -> Iterator[Kiosk]:
    """A kiosk that pauses the sale for the bagging area."""
    yield from bagging_kiosk(tmp_path, "enforce")


@pytest.fixture
def logging_only(tmp_path: Path) -> Iterator[Kiosk]:
    """A kiosk that only logs what the bagging area shows."""
    yield from bagging_kiosk(tmp_path, "log_only")


def sell_tea(kiosk: Kiosk) -> None:
    """The hub sends a box of tea that weighs 130 g in the bag."""
    product = Product(
        sku=TEA_SKU,
        name=TEA_NAME,
        price=Money(349, "EUR"),
        tax_class="reduced",
        barcodes=(normalize_gtin(TEA),),
        bag_grams=TEA_GRAMS,
    )
    sync = CatalogSync(kiosk.services.app.db, "sim-0001", lambda _t, _d: None)
    delta = CatalogDelta(from_version=0, to_version=1, upserts=[payload_from_product(product)])
    assert sync.apply_delta(delta) == "applied"
    lookup = kiosk.services.app.lookup
    kiosk.wait_for(lambda: lookup.by_sku(TEA_SKU), what="the catalog to know the tea")
    assert lookup.by_sku(TEA_SKU).bag_grams == TEA_GRAMS  # type: ignore[union-attr]


def bag(kiosk: Kiosk) -> SimScale:
    """The simulated scale under the bagging area."""
    sim = kiosk.lab.bagging_scale
    assert sim is not None
    return sim


def desk(kiosk: Kiosk) -> BaggingDesk:
    """The kiosk's bagging-area check."""
    found = kiosk.services.app.bagging
    assert found is not None
    return found


def pay_button(kiosk: Kiosk) -> Widget:
    """The shop screen's Pay button, usable or not."""
    found = [w for w in kiosk.widgets() if getattr(w, "text", None) == tr._("Pay")]
    assert found
    return found[0]


def scan_tea_and_bag_it(kiosk: Kiosk) -> None:
    """Scan the tea: Pay waits until the bag gains its weight, then the sale goes on."""
    sell_tea(kiosk)
    kiosk.wait_for(lambda: desk(kiosk).status.weight == 0, what="the empty bag weighed")
    scan_and_wait(kiosk, TEA, 1)
    kiosk.wait_for(lambda: kiosk.app.bagging.waiting, what="the tea expected in the bag")
    kiosk.pump(2)
    assert pay_button(kiosk).disabled

    bag(kiosk).put(TEA_GRAMS + 5)  # within the store's tolerance (20 g)

    kiosk.wait_for(lambda: not kiosk.app.bagging.waiting, what="the tea bagged")
    kiosk.pump(2)
    assert desk(kiosk).status.state == "settled"
    assert desk(kiosk).status.accepted == TEA_GRAMS + 5
    assert not pay_button(kiosk).disabled
    assert kiosk.screen == "shop"


def test_a_scanned_item_put_in_the_bag_lets_the_sale_go_on(enforcing: Kiosk) -> None:
    scan_tea_and_bag_it(enforcing)

    assert b"W" in bag(enforcing).requests  # the bagging scale was asked over the wire
    assert enforcing.services.app.help_desk is not None
    assert enforcing.services.app.help_desk.active == ()
    assert desk(enforcing).counts() == {}


def test_an_unexpected_item_pauses_the_sale_until_staff_clear_it_with_a_badge(
    enforcing: Kiosk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.service.bagging_desk")
    kiosk = enforcing
    scan_tea_and_bag_it(kiosk)

    bag(kiosk).put(TEA_GRAMS + 5 + 700)  # something unscanned put in the bag

    kiosk.wait_for_screen("bagging")
    kiosk.find_text(UNEXPECTED)
    kiosk.screenshot("customer-bagging-unexpected")
    help_desk = kiosk.services.app.help_desk
    assert help_desk is not None
    [call] = help_desk.active
    assert (call.reason, call.state) == ("bagging", "open")
    assert "700 g" not in call.detail and "835 g on the scale, 135 g expected" in call.detail
    assert not [w for w in kiosk.widgets() if getattr(w, "text", None) == tr._("Pay")
                and kiosk.visible(w)]  # fmt: skip

    tap_card(kiosk, DEMO_CASHIER_BADGE)
    kiosk.wait_for(lambda: kiosk.app.bagging.approver == "Alex", what="the cashier vouched")
    kiosk.tap_text(tr._("Clear the alert"))

    kiosk.wait_for_screen("shop")
    assert help_desk.active == ()
    assert desk(kiosk).counts() == {"unexpected_item": 1, "clear": 1}
    [recorded] = kiosk.services.app.checkout.cart.approvals  # the sale will say who and what
    assert recorded.startswith("bagging clear: Alex (") and recorded.endswith(", cashier)")
    assert desk(kiosk).status.accepted == TEA_GRAMS + 5 + 700  # staff accepted the bag
    logged = [r.getMessage() for r in caplog.records]
    assert any("unexpected item: 835 g on the scale, 135 g expected" in m for m in logged)
    assert any(m.startswith("bagging: clear by staff") and "Alex" in m for m in logged)


def test_log_only_mode_logs_and_counts_but_never_pauses(
    logging_only: Kiosk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.service.bagging_desk")
    kiosk = logging_only
    sell_tea(kiosk)
    kiosk.wait_for(lambda: desk(kiosk).status.weight == 0, what="the empty bag weighed")
    scan_and_wait(kiosk, TEA, 1)
    kiosk.pump(2)
    assert not pay_button(kiosk).disabled  # nothing waits for the bag in this mode

    bag(kiosk).put(900)  # not the tea's 130 g

    kiosk.wait_for(
        lambda: desk(kiosk).counts().get("unexpected_item") == 1, what="the alert counted"
    )
    kiosk.pump(3)
    assert kiosk.screen == "shop"
    assert kiosk.services.app.help_desk is not None
    assert kiosk.services.app.help_desk.active == ()
    assert any(
        "unexpected item: 900 g" in r.getMessage() and "logged only" in r.getMessage()
        for r in caplog.records
    )


def test_bags_taken_while_paying_raise_no_alert_and_the_next_sale_starts_empty(
    enforcing: Kiosk,
) -> None:
    kiosk = enforcing
    scan_tea_and_bag_it(kiosk)
    kiosk.tap_text(tr._("Pay"))
    kiosk.wait_for_screen("payment")
    gate = kiosk.services.app.card_gate
    assert gate is not None
    kiosk.wait_for(lambda: gate.availability.offered and kiosk.app.payment.card_ready, what="card")

    asked = len(bag(kiosk).requests)
    bag(kiosk).put(0)  # the customer lifts the bag while the terminal works
    # The watch has read the empty bag twice over the wire: the desk has had it.
    kiosk.wait_for(lambda: len(bag(kiosk).requests) >= asked + 3, what="the empty bag read")
    kiosk.pump(3)
    assert desk(kiosk).status.weight == TEA_GRAMS + 5  # held back, not judged
    kiosk.tap_text(tr._("Card"))
    kiosk.wait_for_screen("receipt")

    kiosk.wait_for(lambda: desk(kiosk).status.weight == 0, what="the lifted bag seen after paying")
    kiosk.pump(3)
    assert desk(kiosk).status.state == "settled"
    assert desk(kiosk).status.accepted == 0  # the next customer starts from the empty bag
    assert desk(kiosk).counts() == {}
    assert kiosk.services.app.help_desk is not None
    assert kiosk.services.app.help_desk.active == ()


def test_a_bagging_scale_that_stops_answering_never_holds_the_customer(enforcing: Kiosk) -> None:
    kiosk = enforcing
    sell_tea(kiosk)
    kiosk.wait_for(lambda: desk(kiosk).status.weight == 0, what="the empty bag weighed")
    scan_and_wait(kiosk, TEA, 1)
    kiosk.wait_for(lambda: kiosk.app.bagging.waiting, what="the tea expected in the bag")

    bag(kiosk).silent = True  # unplugged, or broken: the serial scale says it does not answer
    kiosk.wait_for(lambda: desk(kiosk).status.state == "suspended", what="the check suspended")
    kiosk.pump(2)
    assert not kiosk.app.bagging.waiting and not pay_button(kiosk).disabled
    assert kiosk.screen == "shop"
    assert kiosk.services.app.help_desk is not None
    assert kiosk.services.app.help_desk.active == ()

    bag(kiosk).silent = False
    kiosk.wait_for(lambda: desk(kiosk).status.state == "settled", what="the check back")
    scan_and_wait(kiosk, TEA, 1)  # a second box, on the same line
    kiosk.wait_for(lambda: kiosk.app.bagging.waiting, what="the second box expected")
    assert [item.grams for item in desk(kiosk).status.pending] == [TEA_GRAMS]
