"""Goods sold by weight at the kiosk: the simulated scale on its pty, weighed off the main thread.

A product sold per kg reaches the kiosk as the hub sends it (a catalog delta applied to the
kiosk's own database); the scale is the real SerialScale asking SimScale over a pty.
"""

from __future__ import annotations

import time

import pytest
from kivy.uix.widget import Widget

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.device_settings import HOLD_GAP_MS
from appliance.drivers.serial_scale import SerialScale
from appliance.drivers.sim.scale import SimScale
from appliance.mqtt.catalog_products import payload_from_product
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.payloads import CatalogDelta
from appliance.screens.i18n import tr
from appliance.screens.widgets import CartRow
from tests.screens.customer_steps import COFFEE, cart_row, scan_and_wait, shown
from tests.screens.harness import Kiosk

HOLD_GAP_S = HOLD_GAP_MS / 1000 + 0.05  # past the scanner's re-read window

TOMATOES_SKU = "TOMATO-LOOSE"
TOMATOES_NAME = "Loose tomatoes"
TOMATOES = "426012345099" + gtin_check_digit("426012345099")
PER_KG = 250  # 2.50 EUR per kg: 1234 g cost 308.5 cents, so the rounding rule shows
NOT_SETTLED = "The scale did not settle. Keep the item still and scan it again."
EMPTY = "Put the item on the scale, then scan it again."


def sell_tomatoes_by_weight(kiosk: Kiosk) -> None:
    """The hub sends loose tomatoes, priced per kg with a barcode on the shelf's bin."""
    product = Product(
        sku=TOMATOES_SKU,
        name=TOMATOES_NAME,
        price=Money(PER_KG, "EUR"),
        tax_class="reduced",
        category="Fruit & Veg",
        sold_by="kg",
        names=(("de", "Lose Tomaten"),),
        barcodes=(normalize_gtin(TOMATOES),),
    )
    db = kiosk.services.app.db
    sync = CatalogSync(db, kiosk.services.app.settings.device.id, lambda _t, _d: None)
    delta = CatalogDelta(from_version=0, to_version=1, upserts=[payload_from_product(product)])
    assert sync.apply_delta(delta) == "applied"
    lookup = kiosk.services.app.lookup
    kiosk.wait_for(lambda: lookup.by_sku(TOMATOES_SKU), what="the catalog to know the tomatoes")


def scale(kiosk: Kiosk) -> SimScale:
    """The simulated scale."""
    sim = kiosk.lab.scale
    assert sim is not None
    return sim


def euros(minor: int) -> str:
    """An amount as the screen shows it."""
    return tr.money(minor, "EUR")


def test_a_scanned_item_sold_by_weight_is_weighed_and_priced_per_kg(kiosk: Kiosk) -> None:
    """1234 g at 2.50 EUR/kg: 308.5 cents, rounded half away from zero to 3.09 EUR."""
    sell_tomatoes_by_weight(kiosk)
    scale(kiosk).put(1234)

    scan_and_wait(kiosk, TOMATOES, 1)

    kiosk.wait_for_screen("shop")
    row = cart_row(kiosk, TOMATOES_NAME)
    assert row.quantity == "1,234 kg"
    assert row.amount == euros(309)
    assert not row.countable  # no + and - on a weighed line
    assert kiosk.app.cart.total == euros(309)
    line = kiosk.services.app.checkout.cart.lines[0]
    assert (line.measure, line.quantity, line.unit_price) == ("weight", 1234, PER_KG)
    assert b"W" in scale(kiosk).requests  # asked over the wire, not read off the simulator
    assert not kiosk.app.cart.weighing
    kiosk.screenshot("customer-weighed-item")


def test_an_item_chosen_in_browse_is_weighed_without_claiming_it_is_in_the_basket_first(
    kiosk: Kiosk,
) -> None:
    """Chosen by name, 500 g: the line comes from the scale; no "in your basket" before it."""
    sell_tomatoes_by_weight(kiosk)
    scale(kiosk).put(500)
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.app.browse.search("tomatoes")
    kiosk.wait_for(
        lambda: any(r["sku"] == TOMATOES_SKU for r in kiosk.app.browse.results),
        what="the tomatoes found",
    )

    kiosk.app.browse.add(TOMATOES_SKU)

    in_basket = tr._("{name} is in your basket.").format(name=TOMATOES_NAME)
    assert kiosk.app.session.message != in_basket
    kiosk.wait_for(lambda: len(kiosk.app.cart.rows) == 2, what="the weighed line")
    weighed = next(r for r in kiosk.app.cart.rows if r["name"] == TOMATOES_NAME)
    assert (weighed["quantity"], weighed["amount"]) == ("0,500 kg", euros(125))


def test_a_platter_that_never_settles_adds_nothing_and_says_so(kiosk: Kiosk) -> None:
    """Motion past the bounded wait: a clear message, the cart as it was, ready again."""
    sell_tomatoes_by_weight(kiosk)
    scan_and_wait(kiosk, COFFEE, 1)
    scale(kiosk).put(800)
    scale(kiosk).motion()

    kiosk.scan(TOMATOES)

    kiosk.wait_for(lambda: kiosk.app.cart.weighing, what="the weighing to start")
    kiosk.wait_for(lambda: kiosk.app.session.message == NOT_SETTLED, what="the message")
    kiosk.find_text(NOT_SETTLED)
    assert [row.name for row in shown(kiosk, CartRow)] == ["Ground coffee 250 g"]
    assert len(kiosk.services.app.checkout.cart.lines) == 1
    assert not kiosk.app.cart.weighing

    scale(kiosk).clear()  # the customer holds it still and scans again: now it is weighed
    scan_and_wait(kiosk, TOMATOES, 2)
    assert cart_row(kiosk, TOMATOES_NAME).quantity == "0,800 kg"


def test_an_empty_scale_adds_nothing_and_asks_for_the_item(kiosk: Kiosk) -> None:
    """The scale reads 0 g: the customer is asked to put the item on it; nothing added."""
    sell_tomatoes_by_weight(kiosk)
    scan_and_wait(kiosk, COFFEE, 1)
    scale(kiosk).put(0)

    kiosk.scan(TOMATOES)

    kiosk.wait_for(lambda: kiosk.app.session.message == EMPTY, what="the message")
    kiosk.find_text(EMPTY)
    assert len(kiosk.services.app.checkout.cart.lines) == 1
    assert not kiosk.app.cart.weighing


def shop_button(kiosk: Kiosk, text: str) -> Widget:
    """The shop screen's button showing `text`, usable or not."""
    found = [w for w in kiosk.widgets() if getattr(w, "text", None) == text]
    assert found, f"no {text!r} on {kiosk.screen!r}"
    return found[0]


def test_pay_and_cancel_wait_while_an_item_is_weighed(kiosk: Kiosk) -> None:
    """The total asked of the terminal must include the weighed line: no Pay until it is in."""
    sell_tomatoes_by_weight(kiosk)
    scan_and_wait(kiosk, COFFEE, 1)
    scale(kiosk).put(600)
    scale(kiosk).settle_after(8)  # about 1.6 s of motion, then 600 g

    kiosk.scan(TOMATOES)

    kiosk.wait_for(lambda: kiosk.app.cart.weighing, what="the weighing to start")
    kiosk.pump(2)
    assert shop_button(kiosk, tr._("Pay")).disabled
    assert shop_button(kiosk, tr._("Cancel")).disabled
    kiosk.wait_for(lambda: len(kiosk.app.cart.rows) == 2, what="the weighed line")
    kiosk.pump(2)
    assert not shop_button(kiosk, tr._("Pay")).disabled
    assert not shop_button(kiosk, tr._("Cancel")).disabled


def test_a_weight_that_settles_after_the_sale_ended_is_not_added_to_the_next_one(
    kiosk: Kiosk,
) -> None:
    """The customer walks away while the weight settles: the next customer's cart stays empty."""
    sell_tomatoes_by_weight(kiosk)
    scan_and_wait(kiosk, COFFEE, 1)
    scale(kiosk).put(600)
    scale(kiosk).settle_after(8)

    kiosk.scan(TOMATOES)
    kiosk.wait_for(lambda: kiosk.app.cart.weighing, what="the weighing to start")
    kiosk.app.session.reset()  # what the idle timeout does
    assert kiosk.services.app.checkout.cart.is_empty

    dropped = tr._("The sale ended while the item was weighed: it was not added.")
    kiosk.wait_for(lambda: kiosk.app.session.message == dropped, what="the weight dropped")
    assert kiosk.services.app.checkout.cart.is_empty
    assert not kiosk.app.cart.weighing


def test_an_item_left_on_the_scale_is_not_sold_twice(kiosk: Kiosk) -> None:
    """Scanned again with the same bag still on the platter: refused until the scale is empty."""
    sell_tomatoes_by_weight(kiosk)
    scale(kiosk).put(500)
    scan_and_wait(kiosk, TOMATOES, 1)

    # Presented again, not held in the field: a read closer than the scanner's hold gap
    # after the last would be dropped as the same presentation.
    time.sleep(HOLD_GAP_S)
    kiosk.scan(TOMATOES)

    left_on = tr._("Take the last item off the scale, put this one on, then scan it again.")
    kiosk.wait_for(lambda: kiosk.app.session.message == left_on, what="the refusal")
    assert len(kiosk.services.app.checkout.cart.lines) == 1
    scale(kiosk).put(0)  # the bag is taken off, the next one put on
    kiosk.wait_for(lambda: not scale_adapter(kiosk).awaiting_zero, what="the empty scale seen")
    scale(kiosk).put(800)
    scan_and_wait(kiosk, TOMATOES, 2)
    assert [line.quantity for line in kiosk.services.app.checkout.cart.lines] == [500, 800]


def scale_adapter(kiosk: Kiosk) -> SerialScale:
    """The kiosk's scale adapter."""
    devices = kiosk.services.devices
    assert devices is not None and isinstance(devices.scale, SerialScale)
    return devices.scale


def test_a_weighing_that_crashes_frees_the_kiosk_and_says_the_scale_is_not_working(
    kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a DeviceError (a bug, a library's own error): the kiosk must not stay weighing."""
    sell_tomatoes_by_weight(kiosk)

    def crash(*_args: object, **_kwargs: object) -> int:
        raise RuntimeError("unexpected")

    monkeypatch.setattr("appliance.screens.presenters.cart.weigh_for_sale", crash)
    kiosk.scan(TOMATOES)

    broken = tr._("The scale is not working. Please ask for help.")
    kiosk.wait_for(lambda: kiosk.app.session.message == broken, what="the fault")
    assert not kiosk.app.cart.weighing
    assert kiosk.services.app.checkout.cart.is_empty
