"""A day's sales totals, from the documents in the ledger: what the till took, by tender."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo

from appliance.core.sale import Sale, SaleLine
from appliance.store.documents import SalesLedger

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DayTotals:
    """Counts and amounts (minor units) of one local day; `net` is `gross - refunded`.

    A void of a sale made the same day cancels it: neither counts in `sales` or `gross`.
    A void of an earlier day's sale gives money back today, so it counts in `refunded`.
    """

    day: date
    currency: str
    sales: int  # sales of the day that were not voided the same day
    refunds: int
    voids: int
    gross: int  # what those sales took
    refunded: int  # given back by refunds (and voids of earlier days' sales), as a positive amount
    net: int
    by_tender: dict[str, int]  # tender kind -> amount taken net of what went back
    items: int  # pieces sold net of returns; a weighed or label-priced line is one piece
    # Cash rounding of the counted documents (docs/cash.md): by_tender adds up to net + this.
    rounding: int = 0


def day_totals(ledger: SalesLedger, day: date, tz: tzinfo, *, currency: str = "") -> DayTotals:
    """Totals of the documents made on `day` in the time zone `tz` (the store's local day).

    `currency` names the result when the day has no documents; documents in another
    currency than the day's are left out (and logged): their amounts do not add up.
    """
    start = datetime.combine(day, time.min, tzinfo=tz)
    documents = [d for d in ledger.since(start) if _local_day(d, tz) == day]
    currency = currency or (documents[0].currency if documents else "")
    foreign = [d for d in documents if d.currency != currency]
    for document in foreign:
        log.warning(
            "%s is in %s, not %s: left out of the day's totals",
            document.receipt_number,
            document.currency,
            currency,
        )
    documents = [d for d in documents if d.currency == currency]
    return _totals(day, currency, documents)


def _totals(day: date, currency: str, documents: list[Sale]) -> DayTotals:
    ids = {d.id for d in documents}
    voided_today = {d.references for d in documents if d.kind == "void"}
    counted: list[Sale] = []  # the documents whose money counts today
    sales = refunds = voids = gross = refunded = 0
    for document in documents:
        if document.kind == "sale":
            if document.id in voided_today:
                continue
            sales += 1
            gross += document.total
        elif document.kind == "refund":
            refunds += 1
            refunded -= document.total  # refund totals are negative
        else:
            voids += 1
            if document.references in ids:
                continue  # cancels a sale of today, which was left out above
            refunded -= document.total
        counted.append(document)
    by_tender: dict[str, int] = {}
    rounding = 0
    for document in counted:
        rounding += document.rounding
        for tender in document.tenders:
            by_tender[tender.kind] = by_tender.get(tender.kind, 0) + tender.amount
    return DayTotals(
        day=day,
        currency=currency,
        sales=sales,
        refunds=refunds,
        voids=voids,
        gross=gross,
        refunded=refunded,
        net=gross - refunded,
        by_tender=by_tender,
        items=sum(_pieces(line) for document in counted for line in document.lines),
        rounding=rounding,
    )


def _pieces(line: SaleLine) -> int:
    """Pieces a line sold (negative when returned): a weighed or label-priced line is one."""
    if line.measure == "each":
        return line.quantity
    return 1 if line.quantity > 0 else -1


def _local_day(document: Sale, tz: tzinfo) -> date:
    moment = document.created_at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # stored naive moments are UTC (documents.py)
    return moment.astimezone(tz).date()
