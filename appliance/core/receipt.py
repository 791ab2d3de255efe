"""The receipt as the domain describes it; printers and e-receipts lay it out."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.core.money import Money
from appliance.core.sale import Sale

_KIND_TITLES = {"sale": "", "refund": "REFUND", "void": "VOID"}
_TENDER_NAMES = {"cash": "Cash", "card": "Card", "stored_value": "Stored value"}


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """One printed line: what, how many, how much (formatted for the store's locale)."""

    text: str
    quantity: str
    amount: str
    discount: str = ""  # e.g. "-0.50 €" when a discount applied


@dataclass(frozen=True, slots=True)
class Receipt:
    """Everything a receipt shows, already formatted; layout is the printer's job."""

    store_name: str
    header: tuple[str, ...]
    title: str  # "" for a sale, "REFUND" or "VOID" for corrections
    receipt_number: str
    sale_id: str
    created_at: str
    lines: tuple[ReceiptLine, ...]
    taxes: tuple[tuple[str, str, str], ...]  # (rate, net, tax)
    discount_total: str
    total: str
    tenders: tuple[tuple[str, str], ...]  # (name, amount)
    change: str
    footer: tuple[str, ...]
    card_slip: tuple[str, ...] = ()  # the card terminal's receipt, masked by the terminal


def receipt_for(
    sale: Sale,
    *,
    store_name: str,
    locale: str,
    header: tuple[str, ...] = (),
    footer: tuple[str, ...] = ("Thank you!",),
    card_slip: tuple[str, ...] = (),
) -> Receipt:
    """The receipt of a committed document, formatted for `locale`."""

    def money(minor: int) -> str:
        return Money(minor, sale.currency).format(locale)

    lines = tuple(
        ReceiptLine(
            text=line.name,
            quantity=_quantity(line.quantity, line.measure),
            amount=money(line.amount),
            discount=money(-line.discount) if line.discount else "",
        )
        for line in sale.lines
    )
    return Receipt(
        store_name=store_name,
        header=header,
        title=_KIND_TITLES[sale.kind],
        receipt_number=sale.receipt_number,
        sale_id=sale.id,
        # A time the device could not verify (no NTP, no RTC yet) says so on paper too.
        created_at=sale.created_at.strftime("%Y-%m-%d %H:%M")
        + ("" if sale.clock_verified else " (time not verified)"),
        lines=lines,
        taxes=tuple(
            (f"{t.rate / 100:g}%", money(t.net), money(t.tax)) for t in sale.taxes if t.gross
        ),
        discount_total=money(-sale.discount_total) if sale.discount_total else "",
        total=money(sale.total),
        tenders=tuple((_TENDER_NAMES[t.kind], money(t.tendered or t.amount)) for t in sale.tenders),
        change=money(sale.change) if sale.change else "",
        footer=footer,
        card_slip=card_slip,
    )


def _quantity(quantity: int, measure: str) -> str:
    if measure == "weight":
        return f"{quantity / 1000:.3f} kg"
    return str(quantity)
