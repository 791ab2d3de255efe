"""The receipt as the domain describes it; printers and e-receipts lay it out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from appliance.core.card_balance import CardDebitResult
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
class TextLine:
    """A free line of a paper that is not a sale (a report): text left, `value` flush right.

    An empty text and value is a blank line; `bold` marks headings and totals.
    """

    text: str
    value: str = ""
    bold: bool = False


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
    copy: bool = False  # a reprint: "COPY" stands out on the paper, above and below
    body: tuple[TextLine, ...] = ()  # free lines after the totals (a report's sections)

    def as_copy(self) -> Receipt:
        """The same paper marked as a copy."""
        return replace(self, copy=True)


def receipt_to_dict(receipt: Receipt) -> dict[str, Any]:
    """`receipt` as plain JSON values, to be kept until it prints (and reprinted later)."""
    return asdict(receipt)


def receipt_from_dict(data: dict[str, Any]) -> Receipt:
    """The Receipt `receipt_to_dict` wrote; a missing later field takes its default."""
    fields = dict(data)
    fields["header"] = tuple(fields["header"])
    fields["lines"] = tuple(ReceiptLine(**line) for line in fields["lines"])
    fields["taxes"] = tuple(tuple(tax) for tax in fields["taxes"])
    fields["tenders"] = tuple(tuple(tender) for tender in fields["tenders"])
    fields["footer"] = tuple(fields["footer"])
    fields["card_slip"] = tuple(fields.get("card_slip", ()))
    fields["body"] = tuple(TextLine(**line) for line in fields.get("body", ()))
    return Receipt(**fields)


def receipt_for(
    sale: Sale,
    *,
    store_name: str,
    locale: str,
    header: tuple[str, ...] = (),
    footer: tuple[str, ...] = ("Thank you!",),
    card_slip: tuple[str, ...] = (),
    copy: bool = False,
    stored_value: CardDebitResult | None = None,
) -> Receipt:
    """The receipt of a committed document, formatted for `locale`.

    `stored_value`: what the stored-value card that paid held after it, and its points.
    """

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
        body=_notes(sale, money) + _card_lines(stored_value, money),
        footer=footer,
        card_slip=card_slip,
        copy=copy,
    )


def _notes(sale: Sale, money: Callable[[int], str]) -> tuple[TextLine, ...]:
    """What the paper owes besides lines and tenders: where the cash rounding went, who approved."""
    notes = []
    if sale.rounding:  # the cash paid differs from the total by this much
        notes.append(TextLine("Cash rounding", money(sale.rounding)))
    if sale.approved_by:
        notes.append(TextLine("Approved by", sale.approved_by))
    return tuple(notes)


def _card_lines(card: CardDebitResult | None, money: Callable[[int], str]) -> tuple[TextLine, ...]:
    """The card's balance and loyalty points as the hub last told them (or as kept offline)."""
    if card is None:
        return ()
    # Offline, the hub has not seen this payment yet: the balance is this kiosk's reckoning.
    label = "Card balance (offline)" if card.offline else "Card balance"
    return (TextLine(label, money(card.balance)), TextLine("Loyalty points", str(card.points)))


def _quantity(quantity: int, measure: str) -> str:
    if measure == "weight":
        return f"{quantity / 1000:.3f} kg"
    return str(quantity)
