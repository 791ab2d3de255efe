"""A stored sale document as the receipt shows it: every amount and moment already written out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appliance.core.money import Money
from appliance.mqtt.payloads import SaleDocument
from hub.receipts.lookup import StoreDetails

GRAMS_PER_KG = 1000
_TENDER_NAMES = {"card": "Card", "cash": "Cash", "stored_value": "Store card"}
_KIND_TITLES = {"sale": "Receipt", "refund": "Refund", "void": "Void"}


@dataclass(frozen=True, slots=True)
class LineView:
    """One line: what, how many, and what it cost."""

    name: str
    quantity: str  # "2 × 1.20" or "0.512 kg × 3.49/kg"
    amount: str
    discount: str  # "" when none


@dataclass(frozen=True, slots=True)
class TaxView:
    """One tax class: its rate, net, tax and gross."""

    label: str
    net: str
    tax: str
    gross: str


@dataclass(frozen=True, slots=True)
class TenderView:
    """One payment, with the card number masked to its last four digits."""

    label: str
    amount: str
    detail: str  # "Card •••• 1234", "Given 20.00, change 2.50", or ""


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """Everything a receipt shows, as text."""

    title: str
    store: StoreDetails
    receipt_number: str
    date: str
    device: str
    lines: tuple[LineView, ...]
    taxes: tuple[TaxView, ...]
    tenders: tuple[TenderView, ...]
    discount_total: str  # "" when none
    rounding: str  # "" when none
    total: str
    prices_include_tax: bool


def _card(mask: str) -> str:
    # Only the last four digits, whatever the device sent: the page is on a phone.
    digits = [ch for ch in mask if ch.isdigit()][-4:]
    return "•••• " + "".join(digits) if digits else ""


def _rate(basis_points: int) -> str:
    return f"{basis_points / 100:g} %"


def receipt_view(document: SaleDocument, store: StoreDetails, locale: str) -> ReceiptView:
    """The receipt of a sale document, amounts in its currency written for `locale`."""
    currency = document.currency

    def money(minor: int) -> str:
        return Money(int(minor), currency).format(locale)

    lines = []
    for line in document.lines:
        if line.measure == "weight":
            quantity = f"{line.quantity / GRAMS_PER_KG:.3f} kg × {money(line.unit_price)}/kg"
        else:
            quantity = f"{line.quantity} × {money(line.unit_price)}"
        discount = f"-{money(line.discount)}" if line.discount else ""
        lines.append(LineView(line.name, quantity, money(line.amount), discount))
    tenders = []
    for tender in document.tenders:
        detail = ""
        if tender.kind == "card":
            detail = _card(tender.card_mask)
        elif tender.kind == "cash" and tender.tendered > tender.amount:
            change = money(tender.tendered - tender.amount)
            detail = f"Given {money(tender.tendered)}, change {change}"
        tenders.append(TenderView(_TENDER_NAMES[tender.kind], money(tender.amount), detail))
    created = datetime.fromisoformat(document.created_at)
    return ReceiptView(
        title=_KIND_TITLES[document.kind],
        store=store,
        receipt_number=document.receipt_number,
        # In the device's own offset: the time on the customer's paper and in their memory.
        date=f"{created:%Y-%m-%d %H:%M}",
        device=document.device_id,
        lines=tuple(lines),
        taxes=tuple(
            TaxView(f"{t.tax_class} {_rate(t.rate)}", money(t.net), money(t.tax), money(t.gross))
            for t in document.taxes
        ),
        tenders=tuple(tenders),
        discount_total=money(document.discount_total) if document.discount_total else "",
        rounding=money(document.rounding) if document.rounding else "",
        total=money(document.total),
        prices_include_tax=document.prices_include_tax,
    )
