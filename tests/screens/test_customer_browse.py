"""Items without a barcode: a category, or a name typed on the screen's keyboard."""

from __future__ import annotations

from appliance.screens.customer.browse import ProductRow
from appliance.screens.customer.browse_presenter import BrowseResults
from appliance.screens.widgets import TextKeyboard
from tests.screens.customer_steps import CHOCOLATE_NAME, shown, tap_in
from tests.screens.harness import Kiosk


def product_row(kiosk: Kiosk, sku: str) -> ProductRow:
    """The visible result row of a product."""
    row: ProductRow = kiosk.wait_for(
        lambda: next((row for row in shown(kiosk, ProductRow) if row.sku == sku), None),
        what=f"the result row of {sku}",
    )
    return row


def test_search_by_typing_and_by_category_adds_to_the_cart(kiosk: Kiosk) -> None:
    kiosk.tap_text("Start")
    kiosk.wait_for_screen("shop")
    kiosk.tap_text("Find an item")
    kiosk.wait_for_screen("browse")
    kiosk.wait_for(lambda: "Drinks" in kiosk.app.browse.categories, what="the categories")
    kiosk.pump(2)
    kiosk.screenshot("customer-browse-categories")

    kiosk.tap_text("Keyboard")
    keyboard = shown(kiosk, TextKeyboard)[0]
    for letter in "CHOC":
        tap_in(kiosk, keyboard, letter)
    assert keyboard.value == "CHOC"
    row = product_row(kiosk, "CHOC-100")
    assert row.name == CHOCOLATE_NAME and row.price == "2,19\xa0€"
    kiosk.screenshot("customer-browse-search")
    kiosk.tap_text("Hide keyboard")
    kiosk.find_text("Items matching “CHOC”")
    kiosk.screenshot("customer-browse-results")
    tap_in(kiosk, row, "Add")
    kiosk.wait_for(lambda: kiosk.app.cart.items == 1, what="the chocolate in the cart")
    assert [r["name"] for r in kiosk.app.cart.rows] == [CHOCOLATE_NAME]

    # An answer to an older request arrives late: it must not replace what is shown.
    stale = kiosk.app.browse._generation - 1
    kiosk.services.app.bus.post(BrowseResults(stale, ()))
    kiosk.pump(3)
    assert any(r["sku"] == "CHOC-100" for r in kiosk.app.browse.results)

    kiosk.tap_text("Categories")
    kiosk.wait_for(lambda: kiosk.app.browse.showing == "categories", what="the categories")
    kiosk.tap_text("Drinks")
    kiosk.wait_for(lambda: kiosk.app.browse.results, what="the drinks")
    skus = {r["sku"] for r in kiosk.app.browse.results}
    assert {"WATER-05", "WINE-RED"} <= skus and "CHOC-100" not in skus
    kiosk.find_text("Drinks")
    kiosk.screenshot("customer-browse-category")
    first = kiosk.wait_for(lambda: shown(kiosk, ProductRow), what="a drink shown")
    drink = max(first, key=lambda row: row.top)  # the top row
    tap_in(kiosk, drink, "Add")
    kiosk.wait_for(lambda: kiosk.app.cart.items == 2, what="the drink in the cart")
    kiosk.tap_text("Back to basket")
    kiosk.wait_for_screen("shop")
    assert {r["name"] for r in kiosk.app.cart.rows} == {CHOCOLATE_NAME, drink.name}
