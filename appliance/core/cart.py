"""The cart: an immutable value; every change returns a new cart."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from appliance.core.catalog import Product, ProductMatch
from appliance.core.discount import Discount, allocate
from appliance.core.money import round_half_up
from appliance.core.tax import TaxBreakdown, TaxPolicy, compute_taxes
from appliance.errors import CartError

Measure = Literal["each", "weight", "price"]
GRAMS_PER_KG = 1000


def price_for_weight(price_per_kg: int, grams: int) -> int:
    """What `grams` cost at `price_per_kg`, in minor units.

    The rule (legal-for-trade practice): price = price per kg x grams / 1000, from the
    stable weight in whole grams, rounded once, half away from zero, to the minor unit.
    """
    return round_half_up(Fraction(price_per_kg * grams, GRAMS_PER_KG))


def grams_for_price(price: int, price_per_kg: int) -> int:
    """The weight a price label stands for, in grams (half away from zero).

    A label printed by a scale carries only its price; the weight worked back from it is
    exact to within what the label's own rounding hides, and keeps the stock of goods sold
    by weight in grams whichever label sold them. A priced label stands for at least 1 g:
    a cheap label on a dear product would round to 0 g, a line nothing could refund.
    """
    grams = round_half_up(Fraction(price * GRAMS_PER_KG, price_per_kg))
    return max(grams, 1) if price > 0 else grams


@dataclass(frozen=True, slots=True)
class CartLine:
    """One line: `quantity` counts items, or grams when `measure` is "weight".

    Every line of a product sold by weight is a "weight" line in grams: weighed on the
    scale, read from a weight label, or worked back from a price label (`label_price`).
    """

    line_id: int
    sku: str
    name: str
    unit_price: int  # minor units per item, per kg ("weight") or the embedded price ("price")
    quantity: int
    measure: Measure
    tax_class: str
    stock_tracked: bool = True
    age_restriction: int = 0
    barcode: str | None = None
    discount: Discount | None = None
    age_approved_by: str | None = None
    # How the age check was approved, as the sale records it ("" at the kiosk itself): who,
    # their role, and the staff device a remote approval came from.
    age_approval: str = ""
    # A price label's price: what the customer pays for this weight line, as printed.
    label_price: int | None = None

    @property
    def base_amount(self) -> int:
        """Price before discounts, in minor units."""
        if self.label_price is not None:
            return self.label_price
        if self.measure == "weight":
            return price_for_weight(self.unit_price, self.quantity)
        return self.unit_price * self.quantity

    @property
    def discount_amount(self) -> int:
        """What the line discount takes off."""
        return self.discount.amount_off(self.base_amount) if self.discount else 0

    @property
    def amount(self) -> int:
        """Price after the line discount, before any cart discount."""
        return self.base_amount - self.discount_amount

    @property
    def needs_age_check(self) -> bool:
        """True while an age-restricted line waits for a staff member's approval."""
        return self.age_restriction > 0 and self.age_approved_by is None


@dataclass(frozen=True, slots=True)
class CartTotals:
    """What a cart costs: per-line final amounts, discounts and taxes."""

    subtotal: int  # after line discounts, before the cart discount
    line_discounts: int
    cart_discount: int
    line_amounts: tuple[tuple[int, int], ...]  # (line_id, amount after every discount)
    taxes: TaxBreakdown

    @property
    def total(self) -> int:
        """What the customer pays."""
        return self.taxes.gross

    @property
    def discount_total(self) -> int:
        """Everything taken off by line and cart discounts."""
        return self.line_discounts + self.cart_discount


@dataclass(frozen=True, slots=True)
class Cart:
    """Lines being bought, a cart discount and the id the next line will get."""

    currency: str
    lines: tuple[CartLine, ...] = ()
    discount: Discount | None = None
    next_line_id: int = 1
    # Staff interventions the sale records beside age checks (a bagging alert cleared or
    # skipped): who, their role, from where, and what.
    approvals: tuple[str, ...] = ()

    def add(self, match: ProductMatch, quantity: int = 1) -> Cart:
        """Add a found product; a repeat of a plain item raises the quantity of its line."""
        if quantity <= 0:
            raise CartError("quantity must be at least 1")
        product = match.product
        if product.price.currency != self.currency:
            raise CartError(f"{product.sku} is priced in {product.price.currency}")
        measure, unit_price, quantity, label_price = _measure_of(match, quantity)
        if measure == "each":
            for line in self.lines:
                if line.sku == product.sku and line.measure == "each" and line.discount is None:
                    return self._replace_line(replace(line, quantity=line.quantity + quantity))
        line = CartLine(
            line_id=self.next_line_id,
            sku=product.sku,
            name=product.name,
            unit_price=unit_price,
            quantity=quantity,
            measure=measure,
            tax_class=product.tax_class,
            stock_tracked=product.stock_tracked,
            age_restriction=product.age_restriction,
            barcode=match.scanned.raw if match.scanned else None,
            label_price=label_price,
        )
        return replace(self, lines=(*self.lines, line), next_line_id=self.next_line_id + 1)

    def add_weighed(self, match: ProductMatch, grams: int) -> Cart:
        """Add a product sold by weight at the stable weight the scale gave, in grams."""
        product = match.product
        if not needs_weighing(match):
            raise CartError(f"{product.name} is not weighed on the scale")
        if grams <= 0:
            raise CartError("a weighed item needs a weight above zero")
        if product.price.currency != self.currency:
            raise CartError(f"{product.sku} is priced in {product.price.currency}")
        line = CartLine(
            line_id=self.next_line_id,
            sku=product.sku,
            name=product.name,
            unit_price=product.price.minor,
            quantity=grams,
            measure="weight",
            tax_class=product.tax_class,
            stock_tracked=product.stock_tracked,
            age_restriction=product.age_restriction,
            barcode=match.scanned.raw if match.scanned else None,
        )
        return replace(self, lines=(*self.lines, line), next_line_id=self.next_line_id + 1)

    def line(self, line_id: int) -> CartLine:
        """The line with this id; CartError when there is none."""
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise CartError(f"no line {line_id} in the cart")

    def set_quantity(self, line_id: int, quantity: int) -> Cart:
        """Change how many of an item; weighed and price-embedded lines cannot change."""
        line = self.line(line_id)
        if line.measure != "each":
            raise CartError(f"{line.name} was weighed or priced by its label; remove and rescan it")
        if quantity <= 0:
            raise CartError("quantity must be at least 1; remove the line instead")
        return self._replace_line(replace(line, quantity=quantity))

    def remove(self, line_id: int) -> Cart:
        """Drop a line."""
        self.line(line_id)
        return replace(self, lines=tuple(x for x in self.lines if x.line_id != line_id))

    def discount_line(self, line_id: int, discount: Discount | None) -> Cart:
        """Set or clear one line's discount."""
        return self._replace_line(replace(self.line(line_id), discount=discount))

    def note_approval(self, note: str) -> Cart:
        """Record a staff intervention on the sale to be (once; an empty cart records none)."""
        if self.is_empty or note in self.approvals:
            return self
        return replace(self, approvals=(*self.approvals, note))

    def discount_all(self, discount: Discount | None) -> Cart:
        """Set or clear the discount on the whole cart."""
        return replace(self, discount=discount)

    def approve_age(self, approver: str, line_id: int | None = None, note: str = "") -> Cart:
        """Record that `approver` checked the buyer's age, for one line or all of them.

        `note` says how, for the sale's record (a remote approval: who, role, from where).
        """
        if not approver:
            raise CartError("an age approval needs the approving staff member")
        if line_id is not None:
            self.line(line_id)  # an approval for a line that is not there is a mistake
        lines = tuple(
            replace(x, age_approved_by=approver, age_approval=note)
            if x.needs_age_check and (line_id is None or x.line_id == line_id)
            else x
            for x in self.lines
        )
        return replace(self, lines=lines)

    @property
    def pending_age_checks(self) -> tuple[CartLine, ...]:
        """Lines that still need an age approval."""
        return tuple(x for x in self.lines if x.needs_age_check)

    @property
    def is_empty(self) -> bool:
        """True when nothing is in the cart."""
        return not self.lines

    def totals(self, policy: TaxPolicy) -> CartTotals:
        """Discounts, allocation of the cart discount over lines, and taxes."""
        amounts = [line.amount for line in self.lines]
        subtotal = sum(amounts)
        cart_off = self.discount.amount_off(subtotal) if self.discount else 0
        # The cart discount is shared over lines so each tax class is taxed on what was paid.
        shares = allocate(cart_off, amounts)
        final = [
            (line.line_id, a - s) for line, a, s in zip(self.lines, amounts, shares, strict=True)
        ]
        taxes = compute_taxes(
            policy, ((line.tax_class, a) for line, (_, a) in zip(self.lines, final, strict=True))
        )
        return CartTotals(
            subtotal=subtotal,
            line_discounts=sum(line.discount_amount for line in self.lines),
            cart_discount=cart_off,
            line_amounts=tuple(final),
            taxes=taxes,
        )

    def _replace_line(self, new: CartLine) -> Cart:
        lines = tuple(new if x.line_id == new.line_id else x for x in self.lines)
        return replace(self, lines=lines)


def needs_weighing(match: ProductMatch) -> bool:
    """True when the product is sold by weight and no label on it says its weight or price."""
    return match.product.sold_by == "kg" and (
        match.scanned is None or match.scanned.variable is None
    )


def _measure_of(match: ProductMatch, quantity: int) -> tuple[Measure, int, int, int | None]:
    """How a product found by this match is counted and priced, and its label price if any."""
    product: Product = match.product
    variable = match.scanned.variable if match.scanned else None
    if variable is not None and quantity != 1:
        # Each label carries its own weight or price; a multiplier would charge it wrongly.
        raise CartError(f"{product.name} has a weight or price label; scan each label once")
    if variable is not None and variable.measure == "price":
        if product.sold_by == "kg":
            # Stock of goods sold by weight is kept in grams, whichever label sold them.
            if product.price.minor <= 0:
                raise CartError(f"{product.name} has no price per kg to weigh its label by")
            grams = grams_for_price(variable.value, product.price.minor)
            return "weight", product.price.minor, grams, variable.value
        return "price", variable.value, 1, None
    if variable is not None and variable.measure == "weight":
        if product.sold_by != "kg":
            raise CartError(f"{product.name} is not sold by weight")
        return "weight", product.price.minor, variable.value, None
    if product.sold_by == "kg":
        raise CartError(f"{product.name} is sold by weight; weigh it on the scale")
    return "each", product.price.minor, quantity, None
