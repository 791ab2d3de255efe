"""The checkout use case: build a cart from scans and turn it into a committed sale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from appliance.core.barcode import VariableMeasureRule
from appliance.core.cart import Cart, CartTotals
from appliance.core.catalog import CatalogLookup, find_product
from appliance.core.clock import Clock
from appliance.core.discount import Discount
from appliance.core.events import Event, EventBus, SaleCommitted
from appliance.core.sale import Sale, SaleDraft, draft_sale
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from appliance.errors import CartError


class SaleRecorder(Protocol):
    """Durably stores documents (the store's SalesLedger); blocking, main thread."""

    def commit(self, draft: SaleDraft) -> Sale:
        """Number and store a document; once it returns, the document survives a power cut."""
        ...


@dataclass(frozen=True, slots=True)
class CartChanged(Event):
    """The cart on a till changed; views redraw from `Checkout.cart`."""

    lines: int
    total: int


class Checkout:
    """One till's cart and its payment; call from the main thread only."""

    def __init__(
        self,
        catalog: CatalogLookup,
        recorder: SaleRecorder,
        policy: TaxPolicy,
        *,
        currency: str,
        device_id: str,
        clock: Clock,
        bus: EventBus,
        barcode_rules: Sequence[VariableMeasureRule] = (),
    ) -> None:
        self._catalog = catalog
        self._recorder = recorder
        self._policy = policy
        self._currency = currency
        self._device_id = device_id
        self._clock = clock
        self._bus = bus
        self._rules = tuple(barcode_rules)
        self._cart = Cart(currency)

    @property
    def cart(self) -> Cart:
        """The cart as it is now."""
        return self._cart

    def totals(self) -> CartTotals:
        """What the cart costs now."""
        return self._cart.totals(self._policy)

    def scan(self, code: str) -> Cart:
        """Add the product for a barcode or SKU; raises BarcodeError or UnknownProductError."""
        return self._change(self._cart.add(find_product(self._catalog, code, self._rules)))

    def set_quantity(self, line_id: int, quantity: int) -> Cart:
        """Change a line's quantity."""
        return self._change(self._cart.set_quantity(line_id, quantity))

    def remove(self, line_id: int) -> Cart:
        """Drop a line."""
        return self._change(self._cart.remove(line_id))

    def discount_line(self, line_id: int, discount: Discount | None) -> Cart:
        """Set or clear a line discount."""
        return self._change(self._cart.discount_line(line_id, discount))

    def discount_all(self, discount: Discount | None) -> Cart:
        """Set or clear the cart discount."""
        return self._change(self._cart.discount_all(discount))

    def approve_age(self, approver: str, line_id: int | None = None) -> Cart:
        """Record a staff member's age check."""
        return self._change(self._cart.approve_age(approver, line_id))

    def cancel(self) -> Cart:
        """Empty the cart without selling."""
        return self._change(Cart(self._currency))

    def resume(self, cart: Cart) -> Cart:
        """Carry on with a parked cart; refused while another cart is in progress."""
        if not self._cart.is_empty:
            raise CartError("finish or park the cart in progress before resuming another")
        if cart.currency != self._currency:
            raise CartError(
                f"the parked cart is in {cart.currency}, this till sells in {self._currency}"
            )
        return self._change(cart)

    def pay(self, tenders: Sequence[Tender], staff: str = "") -> Sale:
        """Commit the paid cart as a sale and start a new cart; the cart stays if this raises."""
        draft = draft_sale(
            self._cart,
            self._policy,
            tenders,
            device_id=self._device_id,
            now=self._clock.now(),
            staff=staff,
        )
        sale = self._recorder.commit(draft)
        self._change(Cart(self._currency))
        self._bus.post(
            SaleCommitted(
                sale.id, sale.kind, sale.sequence, sale.receipt_number, sale.total, sale.currency
            )
        )
        return sale

    def _change(self, cart: Cart) -> Cart:
        self._cart = cart
        self._bus.post(CartChanged(len(cart.lines), cart.totals(self._policy).total))
        return cart
