"""Sales, refunds and voids: immutable documents made from a paid cart or an earlier sale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction
from typing import Literal

from appliance.core.cart import Cart, Measure
from appliance.core.cash_rounding import rounding_of
from appliance.core.ids import new_document_id
from appliance.core.money import round_half_up
from appliance.core.tax import Rounding, TaxBreakdown, TaxLine, TaxPolicy, compute_taxes
from appliance.core.tender import Tender, check_settles
from appliance.errors import CartError, DocumentError

DocumentKind = Literal["sale", "refund", "void"]


@dataclass(frozen=True, slots=True)
class SaleLine:
    """A sold (or, negative, returned) line with its final price and tax rate."""

    line_no: int
    sku: str
    name: str
    quantity: int  # items, or grams when weighed; negative on refunds and voids
    measure: Measure
    unit_price: int
    discount: int  # line discount plus this line's share of the cart discount
    amount: int  # after every discount, as priced (gross when prices include tax)
    tax_class: str
    tax_rate: int  # basis points in force when sold
    stock_tracked: bool = True
    barcode: str | None = None
    refers_to_line: int | None = None  # on refunds and voids: the original line

    @property
    def stock_delta(self) -> int:
        """How this line moves stock: a sale takes out, a return puts back."""
        return -self.quantity if self.stock_tracked else 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SaleDraft:
    """A complete document that has not been given its place in the device's sequence yet."""

    id: str
    kind: DocumentKind
    device_id: str
    created_at: datetime
    currency: str
    prices_include_tax: bool
    tax_rounding: Rounding
    lines: tuple[SaleLine, ...]
    taxes: tuple[TaxLine, ...]
    discount_total: int
    total: int
    tenders: tuple[Tender, ...]
    staff: str = ""
    references: str | None = None  # the sale a refund or void corrects
    reason: str = ""
    # Cash rounding (docs/cash.md): what the cash tender paid beyond (+) or short of (-) the
    # exact total; the tenders pay total + rounding. 0 on documents made before it existed.
    rounding: int = 0
    # Who approved it: the supervisor of a void; a sale's age check approved remotely
    # ("Alex (S1, cashier) from till-2") and its bagging alerts dealt with by staff
    # ("bagging clear: Alex (S1, cashier)"); "" when nobody had to.
    approved_by: str = ""
    # False: stamped before the device's clock was known to be right (no NTP, no RTC yet).
    clock_verified: bool = True
    # The e-receipt link's secret (appliance/core/ids.py), given by the store when a sale
    # commits; "" on refunds, voids and documents made before it existed.
    receipt_token: str = ""

    @property
    def tax_total(self) -> int:
        """Tax contained in or added to the total."""
        return sum(t.tax for t in self.taxes)

    @property
    def paid(self) -> int:
        """What the tenders pay: the total plus the cash rounding."""
        return self.total + self.rounding

    @property
    def change(self) -> int:
        """Cash handed back."""
        return sum(t.change for t in self.tenders)

    def seal(self, sequence: int, receipt_number: str) -> Sale:
        """The committed document, numbered; only the store calls this, inside its transaction."""
        fields = {name: getattr(self, name) for name in SaleDraft.__dataclass_fields__}
        return Sale(**fields, sequence=sequence, receipt_number=receipt_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sale(SaleDraft):
    """A committed document: it never changes; corrections are new documents."""

    sequence: int  # per device, gapless, from 1
    receipt_number: str


def draft_sale(
    cart: Cart,
    policy: TaxPolicy,
    tenders: Sequence[Tender],
    *,
    device_id: str,
    now: datetime,
    staff: str = "",
    cash_rounding: int = 0,
) -> SaleDraft:
    """Turn a paid cart into a sale; refuses an empty, unapproved or unsettled cart.

    `cash_rounding` is the store's increment (docs/cash.md): a cash tender pays its part
    rounded to it, and the sale records the difference.
    """
    if cart.is_empty:
        raise CartError("the cart is empty")
    if pending := cart.pending_age_checks:
        names = ", ".join(line.name for line in pending)
        raise CartError(f"age check needed for: {names}")
    totals = cart.totals(policy)
    rounding = rounding_of(tenders, totals.total, cash_rounding)
    check_settles(tenders, totals.total, rounding)
    finals = dict(totals.line_amounts)
    lines = tuple(
        SaleLine(
            line_no=n,
            sku=line.sku,
            name=line.name,
            quantity=line.quantity,
            measure=line.measure,
            unit_price=line.unit_price,
            discount=line.base_amount - finals[line.line_id],
            amount=finals[line.line_id],
            tax_class=line.tax_class,
            tax_rate=policy.rate_of(line.tax_class),
            stock_tracked=line.stock_tracked,
            barcode=line.barcode,
        )
        for n, line in enumerate(cart.lines, start=1)
    )
    return SaleDraft(
        id=new_document_id(),
        kind="sale",
        device_id=device_id,
        created_at=now,
        currency=cart.currency,
        prices_include_tax=policy.prices_include_tax,
        tax_rounding=policy.rounding,
        lines=lines,
        taxes=totals.taxes.lines,
        discount_total=totals.discount_total,
        total=totals.total,
        tenders=tuple(tenders),
        staff=staff,
        rounding=rounding,
        # A remote age check is recorded with who approved it, in which role, from where.
        approved_by="; ".join(
            [*sorted({x.age_approval for x in cart.lines if x.age_approval}), *cart.approvals]
        ),
    )


def draft_refund(
    original: Sale,
    quantities: Mapping[int, int],
    tenders: Sequence[Tender],
    *,
    already_refunded: Mapping[int, int],
    device_id: str,
    now: datetime,
    staff: str,
    reason: str = "",
    cash_rounding: int = 0,
) -> SaleDraft:
    """Return some items of a sale: {line_no: quantity}; taxed at the original rates.

    Cash paid back is rounded to `cash_rounding` like a sale's (docs/cash.md).
    """
    if original.kind != "sale":
        raise DocumentError(f"only a sale can be refunded, not a {original.kind}")
    if not staff:
        raise DocumentError("a refund needs the staff member who made it")
    if not quantities:
        raise DocumentError("nothing to refund")
    by_no = {line.line_no: line for line in original.lines}
    lines = []
    for n, (line_no, quantity) in enumerate(sorted(quantities.items()), start=1):
        line = by_no.get(line_no)
        if line is None:
            raise DocumentError(f"sale {original.receipt_number} has no line {line_no}")
        before = already_refunded.get(line_no, 0)
        left = line.quantity - before
        if not 0 < quantity <= left:
            raise DocumentError(f"line {line_no} has {left} left to refund, not {quantity}")
        if line.measure != "each" and quantity != line.quantity:
            raise DocumentError(f"line {line_no} was weighed or label-priced: refund it whole")
        lines.append(
            replace(
                line,
                line_no=n,
                quantity=-quantity,
                discount=-_part_of(line.discount, before, before + quantity, line.quantity),
                amount=-_part_of(line.amount, before, before + quantity, line.quantity),
                refers_to_line=line_no,
            )
        )
    taxes = _refund_taxes(original, quantities, already_refunded)
    rounding = rounding_of(tenders, taxes.gross, cash_rounding)
    check_settles(tenders, taxes.gross, rounding)
    return SaleDraft(
        id=new_document_id(),
        kind="refund",
        device_id=device_id,
        created_at=now,
        currency=original.currency,
        prices_include_tax=original.prices_include_tax,
        tax_rounding=original.tax_rounding,
        lines=tuple(lines),
        taxes=taxes.lines,
        discount_total=sum(line.discount for line in lines),
        total=taxes.gross,
        tenders=tuple(tenders),
        staff=staff,
        references=original.id,
        reason=reason,
        rounding=rounding,
    )


def refund_total(
    original: Sale, quantities: Mapping[int, int], *, already_refunded: Mapping[int, int]
) -> int:
    """What refunding {line_no: quantity} pays back (negative), exactly as draft_refund totals it.

    The tenders of a refund must settle this amount, so a till asks for it before drafting.
    """
    return _refund_taxes(original, quantities, already_refunded).gross


def _refund_taxes(
    original: Sale, quantities: Mapping[int, int], already_refunded: Mapping[int, int]
) -> TaxBreakdown:
    """The taxes (and gross) a refund of `quantities` takes back, at the original rates."""
    policy = TaxPolicy.of(
        {line.tax_class: line.tax_rate for line in original.lines},
        prices_include_tax=original.prices_include_tax,
        rounding=original.tax_rounding,
    )
    after = dict(already_refunded)
    for line_no, quantity in quantities.items():
        after[line_no] = after.get(line_no, 0) + quantity
    # Tax is rounded on the running total of everything refunded, like the amounts, so a
    # series of partial refunds gives back exactly the sale's tax and total, never a cent more.
    return _tax_difference(
        compute_taxes(policy, _refunded_amounts(original, after)),
        compute_taxes(policy, _refunded_amounts(original, already_refunded)),
    )


def _refunded_amounts(original: Sale, refunded: Mapping[int, int]) -> list[tuple[str, int]]:
    """(tax class, amount) of everything refunded so far, line by line, rounded cumulatively."""
    return [
        (line.tax_class, _part_of(line.amount, 0, refunded[line.line_no], line.quantity))
        for line in original.lines
        if refunded.get(line.line_no)
    ]


def _tax_difference(after: TaxBreakdown, before: TaxBreakdown) -> TaxBreakdown:
    """What a refund takes back: the refunded-so-far taxes after it minus before it, negated."""
    earlier = {t.tax_class: t for t in before.lines}
    lines = []
    for t in after.lines:
        b = earlier.get(t.tax_class, TaxLine(t.tax_class, t.rate, 0, 0, 0))
        lines.append(TaxLine(t.tax_class, t.rate, b.net - t.net, b.tax - t.tax, b.gross - t.gross))
    return TaxBreakdown(tuple(lines))


def _part_of(amount: int, start: int, end: int, quantity: int) -> int:
    """The share of `amount` for items start+1..end of `quantity`, rounded cumulatively.

    Rounding the running total rather than each piece makes any series of partial refunds
    add up to exactly `amount` once every item is back (1/3 + 1/3 + 1/3 of 100 is 33+34+33).
    """
    return round_half_up(Fraction(amount * end, quantity)) - round_half_up(
        Fraction(amount * start, quantity)
    )


def draft_void(
    original: Sale,
    *,
    device_id: str,
    now: datetime,
    staff: str,
    reason: str,
    approved_by: str = "",
) -> SaleDraft:
    """Cancel a whole sale: every line, tax, tender and the cash rounding reversed exactly."""
    if original.kind != "sale":
        raise DocumentError(f"only a sale can be voided, not a {original.kind}")
    if not staff:
        raise DocumentError("a void needs the staff member who made it")
    lines = tuple(
        replace(
            line,
            quantity=-line.quantity,
            discount=-line.discount,
            amount=-line.amount,
            refers_to_line=line.line_no,
        )
        for line in original.lines
    )
    taxes = tuple(replace(t, net=-t.net, tax=-t.tax, gross=-t.gross) for t in original.taxes)
    return SaleDraft(
        id=new_document_id(),
        kind="void",
        device_id=device_id,
        created_at=now,
        currency=original.currency,
        prices_include_tax=original.prices_include_tax,
        tax_rounding=original.tax_rounding,
        lines=lines,
        taxes=taxes,
        discount_total=-original.discount_total,
        total=-original.total,
        tenders=tuple(t.negated() for t in original.tenders),
        staff=staff,
        references=original.id,
        reason=reason,
        rounding=-original.rounding,
        approved_by=approved_by,
    )
