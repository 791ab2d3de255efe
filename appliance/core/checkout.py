"""The checkout use case: build a cart from scans and turn it into a committed sale."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from appliance.core.barcode import VariableMeasureRule
from appliance.core.cart import Cart, CartTotals
from appliance.core.cash_rounding import cash_due
from appliance.core.catalog import CatalogLookup, ProductMatch, find_product
from appliance.core.clock import Clock
from appliance.core.discount import Discount
from appliance.core.events import Event, EventBus, SaleCommitted
from appliance.core.sale import Sale, SaleDraft, draft_sale
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from appliance.errors import CartError, NoOpenShiftError, SalesPausedError

# Asked before each new sale when a till needs an open shift: "" when one is open, else why not.
ShiftCheck = Callable[[], str]


class SaleRecorder(Protocol):
    """Durably stores documents (the store's SalesLedger); blocks for the disk, any one thread."""

    def commit(self, draft: SaleDraft) -> Sale:
        """Number and store a document; once it returns, the document survives a power cut."""
        ...


@dataclass(frozen=True, slots=True)
class CartChanged(Event):
    """The cart on a till changed; views redraw from `Checkout.cart`."""

    lines: int
    total: int


class Checkout:
    """One till's cart and its payment; any thread may call it, and a cart being paid is held.

    Scans and edits come from the main thread; `pay` waits for the disk, so the screens run
    it on the store's writer thread. Each change swaps the (immutable) cart under a lock, and
    from the moment `pay` drafts the sale until the sale is stored or refused, every change
    (a second `pay` too) raises CartError: no scan lands in a cart on its way out, and no
    paid line comes back. Reading `cart` and `totals()` never waits.
    """

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
        cash_rounding: int = 0,
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
        self._lock = threading.Lock()  # held only to check and swap the cart, never for I/O
        self._paying = False
        # Bumped whenever the cart in progress ends or is replaced (paid, cancelled, parked,
        # resumed): a weight read for one sale must never land in the next.
        self._generation = 0
        self._paused = ""  # why no new sale may start, or ""
        self._cash_rounding = cash_rounding  # the store's increment (docs/cash.md)
        self._shift_check: ShiftCheck | None = None

    @property
    def cart(self) -> Cart:
        """The cart as it is now."""
        return self._cart

    @property
    def paying(self) -> bool:
        """True while a sale of this cart is being stored: the cart is held."""
        return self._paying

    @property
    def generation(self) -> int:
        """Which sale the cart belongs to: changes on pay, cancel, park and resume."""
        return self._generation

    @property
    def paused(self) -> str:
        """Why no new sale may start now, or "" when sales are open."""
        return self._paused

    @property
    def cash_rounding(self) -> int:
        """The store's cash rounding increment in minor units (0: none)."""
        return self._cash_rounding

    def cash_due(self, remaining: int) -> int:
        """What cash pays for `remaining` (the total less the other tenders), rounded."""
        return cash_due(remaining, self._cash_rounding)

    def require_shift(self, check: ShiftCheck | None) -> None:
        """From now on a sale starts (and is paid) only while `check()` says "" (None: never asked).

        A staffed till installs the shift book's check: with no shift open, a scan into an
        empty cart and `pay` raise NoOpenShiftError with its reason. `complete` is not
        asked: that money was taken before a crash, and the next shift holds its sale.
        """
        self._shift_check = check

    def shift_missing(self) -> str:
        """Why no sale may start for want of a shift, or "" (also "" when not asked)."""
        return self._shift_check() if self._shift_check is not None else ""

    def pause_new_sales(self, reason: str) -> None:
        """Refuse new carts while `reason` holds ("" reopens); the cart in progress may be paid."""
        self._paused = reason

    def totals(self) -> CartTotals:
        """What the cart costs now."""
        return self._cart.totals(self._policy)

    def scan(self, code: str) -> Cart:
        """Add the product for a barcode or SKU; raises BarcodeError or UnknownProductError.

        Raises SalesPausedError when the cart is empty and new sales are paused.
        """
        product = find_product(self._catalog, code, self._rules)
        return self._change(lambda cart: self._starting(cart).add(product))

    def find(self, code: str) -> ProductMatch:
        """The product for a barcode or SKU, not added (to see whether it needs weighing)."""
        return find_product(self._catalog, code, self._rules)

    def add_weighed(
        self, match: ProductMatch, grams: int, *, generation: int | None = None
    ) -> Cart:
        """Add a product weighed on the scale, in grams; CartError if `generation` has ended."""

        def add(cart: Cart) -> Cart:
            # Checked under the lock: a pay on the writer thread cannot slip in between.
            if generation is not None and generation != self._generation:
                raise CartError("the sale it was weighed for has ended")
            return self._starting(cart).add_weighed(match, grams)

        return self._change(add)

    def set_quantity(self, line_id: int, quantity: int) -> Cart:
        """Change a line's quantity."""
        return self._change(lambda cart: cart.set_quantity(line_id, quantity))

    def remove(self, line_id: int) -> Cart:
        """Drop a line."""
        return self._change(lambda cart: cart.remove(line_id))

    def discount_line(self, line_id: int, discount: Discount | None) -> Cart:
        """Set or clear a line discount."""
        return self._change(lambda cart: cart.discount_line(line_id, discount))

    def discount_all(self, discount: Discount | None) -> Cart:
        """Set or clear the cart discount."""
        return self._change(lambda cart: cart.discount_all(discount))

    def note_approval(self, note: str) -> Cart:
        """Record a staff intervention on the sale in progress (a bagging alert dealt with)."""
        return self._change(lambda cart: cart.note_approval(note))

    def approve_age(self, approver: str, line_id: int | None = None, note: str = "") -> Cart:
        """Record a staff member's age check (`note`: how, for the sale's record)."""
        return self._change(lambda cart: cart.approve_age(approver, line_id, note))

    def cancel(self) -> Cart:
        """Empty the cart without selling."""

        def empty(_cart: Cart) -> Cart:
            self._generation += 1
            return Cart(self._currency)

        return self._change(empty)

    def resume(self, cart: Cart) -> Cart:
        """Carry on with a parked cart; refused while another cart is in progress."""
        if cart.currency != self._currency:
            raise CartError(
                f"the parked cart is in {cart.currency}, this till sells in {self._currency}"
            )

        def take(current: Cart) -> Cart:
            if not current.is_empty:
                raise CartError("finish or park the cart in progress before resuming another")
            self._starting(current)
            self._generation += 1
            return cart

        return self._change(take)

    def pay(self, tenders: Sequence[Tender], staff: str = "") -> Sale:
        """Commit the paid cart as a sale and start a new cart; the cart stays if this raises.

        Blocks for the disk (run it off the main thread); the cart is held until it returns.
        """
        if missing := self.shift_missing():
            raise NoOpenShiftError(f"no sale now: {missing}")
        with self._lock:
            self._refuse_while_paying()
            draft = draft_sale(
                self._cart,
                self._policy,
                tenders,
                device_id=self._device_id,
                now=self._clock.now(),
                staff=staff,
                cash_rounding=self._cash_rounding,
            )
            self._paying = True
        try:
            sale = self._recorder.commit(draft)
        except BaseException:
            with self._lock:
                self._paying = False
            raise
        # The new cart in the same step that lets changes in: nothing lands on the sold one.
        with self._lock:
            self._paying = False
            self._generation += 1
            cart = self._cart = Cart(self._currency)
        self._changed(cart)
        self._bus.post(SaleCommitted.of(sale))
        return sale

    def complete(self, cart: Cart, tenders: Sequence[Tender]) -> Sale:
        """Commit a cart an earlier run was paid for; the cart in progress is left alone.

        Blocks for the disk. Recovery uses it for a card approved before a crash.
        """
        draft = draft_sale(
            cart,
            self._policy,
            tenders,
            device_id=self._device_id,
            now=self._clock.now(),
            cash_rounding=self._cash_rounding,
        )
        sale = self._recorder.commit(draft)
        self._bus.post(SaleCommitted.of(sale))
        return sale

    def _change(self, change: Callable[[Cart], Cart]) -> Cart:
        with self._lock:
            self._refuse_while_paying()
            cart = self._cart = change(self._cart)
        self._changed(cart)
        return cart

    def _changed(self, cart: Cart) -> None:
        self._bus.post(CartChanged(len(cart.lines), cart.totals(self._policy).total))

    def _starting(self, cart: Cart) -> Cart:
        """`cart` itself; refused when it is empty (a new sale) while sales are paused."""
        if self._paused and cart.is_empty:
            raise SalesPausedError(f"no new sale now: {self._paused}")
        if cart.is_empty and (missing := self.shift_missing()):
            raise NoOpenShiftError(f"no new sale now: {missing}")
        return cart

    def _refuse_while_paying(self) -> None:
        if self._paying:
            raise CartError("the cart is being paid; wait until the sale is stored")
