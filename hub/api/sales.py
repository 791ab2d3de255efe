"""/api/v1/sales: every sale, refund and void with its lines, taxes and tenders, page by page.

A sale is read from the document its device committed (`sale.document`, a SaleDocument)
and the row the ingest wrote beside it; card tenders carry only the masked number the
device put in the document. A token limited to a store sees that store's sales only:
another store's sale is "not found", and a list asked for another store is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from peewee import Database

from hub.api.access import Principal
from hub.api.paging import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    decode_id_cursor,
    encode_cursor,
    rfc3339,
    settled_ids,
    utc_param,
)
from hub.models import Sale as SaleRow

log = logging.getLogger(__name__)

Kind = Literal["sale", "refund", "void"]
_CURSOR_KIND = "sales"


class SaleLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a sale: quantity in items (grams when weighed), money in minor units."""

    line_no: int
    sku: str
    name: str
    quantity: int
    measure: Literal["each", "price", "weight"]
    unit_price: int
    discount: int
    amount: int
    tax_class: str
    tax_rate: int  # basis points
    stock_tracked: bool = True
    barcode: str | None = None
    refers_to_line: int | None = None  # a refund's line: the line of the sale it gives back


class SaleTax(msgspec.Struct, frozen=True, kw_only=True):
    """The tax of one class and rate (basis points) across the sale, in minor units."""

    tax_class: str
    rate: int
    net: int
    tax: int
    gross: int


class SaleTender(msgspec.Struct, frozen=True, kw_only=True):
    """One payment of the sale; a card shows only its masked number."""

    kind: Literal["card", "cash", "stored_value"]
    amount: int
    tendered: int = 0  # cash handed over (change = tendered - amount)
    reference: str = ""
    card_mask: str = ""


class _Document(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a stored SaleDocument the API shows beyond the sale's own columns."""

    receipt_number: str = ""
    prices_include_tax: bool = True
    tax_rounding: Literal["line", "total"] = "line"
    lines: list[SaleLine] = []
    taxes: list[SaleTax] = []
    discount_total: int = 0
    rounding: int = 0
    tenders: list[SaleTender] = []
    staff: str = ""
    references: str | None = None
    reason: str = ""
    approved_by: str = ""


class Sale(msgspec.Struct, frozen=True, kw_only=True):
    """A committed sale, refund or void as its device made it; money in minor units."""

    id: str
    device: str
    seq: int
    store: str | None  # the device's store when the sale arrived
    kind: Kind
    created_at: str  # RFC 3339, by the device's clock
    received_at: str  # RFC 3339, when the hub stored it
    clock_verified: bool  # False: the device's clock was not yet known right
    currency: str
    total: int  # negative for a refund
    receipt_number: str
    prices_include_tax: bool
    tax_rounding: Literal["line", "total"]
    lines: list[SaleLine]
    taxes: list[SaleTax]
    tenders: list[SaleTender]
    discount_total: int
    rounding: int
    staff: str
    approved_by: str
    reason: str  # why a refund or void was made
    references: str | None  # a refund or void: the id of the sale it corrects


class SalePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of sales, oldest stored first."""

    items: list[Sale]
    next_cursor: str | None  # the cursor to read on from; kept, it also finds later arrivals
    has_more: bool  # True: the next page already holds sales


_decode_document = msgspec.json.Decoder(_Document).decode


def sale_view(row: Mapping[str, Any]) -> Sale:
    """A `sale` row (from the database, or as on_stored gets it) as the API shows it."""
    document = _decode_document(row["document"])
    return Sale(
        id=str(row["sale_id"]),
        device=str(row["device"]),
        seq=int(row["seq"]),
        store=row.get("store"),
        kind=row["kind"],
        created_at=rfc3339(row["created_at"]) or "",
        received_at=rfc3339(row["received_at"]) or "",
        clock_verified=bool(row["clock_verified"]),
        currency=str(row["currency"]),
        total=int(row["total"]),
        receipt_number=document.receipt_number,
        prices_include_tax=document.prices_include_tax,
        tax_rounding=document.tax_rounding,
        lines=document.lines,
        taxes=document.taxes,
        tenders=document.tenders,
        discount_total=document.discount_total,
        rounding=document.rounding,
        staff=document.staff,
        approved_by=document.approved_by,
        reason=document.reason,
        references=document.references,
    )


_SINCE = "Created at or after this RFC 3339 time (by the device's clock)."
_UNTIL = "Created before this RFC 3339 time."
_RECEIVED = "Stored by the hub at or after this RFC 3339 time."


@get(
    "/sales",
    operation_id="listSales",
    sync_to_thread=True,
    tags=["sales"],
)
def list_sales(
    *,
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    store: Annotated[str | None, QueryParameter(description="Only this store's sales.")] = None,
    device: Annotated[str | None, QueryParameter(description="Only this device's sales.")] = None,
    kind: Annotated[
        Kind | None, QueryParameter(description="Only sales, refunds or voids.")
    ] = None,
    since: Annotated[datetime | None, QueryParameter(description=_SINCE)] = None,
    until: Annotated[datetime | None, QueryParameter(description=_UNTIL)] = None,
    received_since: Annotated[datetime | None, QueryParameter(description=_RECEIVED)] = None,
) -> SalePage:
    """Sales, refunds and voids in the order the hub stored them, filtered, a page at a time.

    The order is the hub's storage order, not `created_at`: a sale that reaches the hub
    late (a device that was offline) comes after the sales stored before it, even with an
    older `created_at`, so a client that keeps the last `next_cursor` and asks again later
    gets exactly the sales it has not seen, none twice, whatever arrives between its calls.
    """
    after = decode_id_cursor(_CURSOR_KIND, cursor)
    since_at = utc_param("since", since)
    until_at = utc_param("until", until)
    received_at = utc_param("received_since", received_since)
    if principal.store is not None and store not in (None, principal.store):
        return SalePage(items=[], next_cursor=cursor, has_more=False)  # never another store's
    query = SaleRow.select().where(SaleRow.id > after)
    wanted_store = principal.store or store
    if wanted_store is not None:
        query = query.where(SaleRow.store == wanted_store)
    if device is not None:
        query = query.where(SaleRow.device == device)
    if kind is not None:
        query = query.where(SaleRow.kind == kind)
    if since_at is not None:
        query = query.where(SaleRow.created_at >= since_at)
    if until_at is not None:
        query = query.where(SaleRow.created_at < until_at)
    if received_at is not None:
        query = query.where(SaleRow.received_at >= received_at)
    with settled_ids(db, SaleRow):
        rows = list(query.order_by(SaleRow.id).limit(limit + 1).dicts().execute(db))
    page = rows[:limit]
    last = encode_cursor(_CURSOR_KIND, page[-1]["id"]) if page else cursor
    return SalePage(
        items=[sale_view(row) for row in page], next_cursor=last, has_more=len(rows) > limit
    )


@get(
    "/sales/{device:str}/{sale_id:str}",
    operation_id="getSale",
    sync_to_thread=True,
    tags=["sales"],
    raises=[NotFoundException],
)
def get_sale(
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    device: FromPath[str],
    sale_id: FromPath[str],
) -> Sale:
    """One sale, refund or void by its device and its id."""
    row = (
        SaleRow.select()
        .where((SaleRow.device == device) & (SaleRow.sale_id == sale_id))
        .dicts()
        .first(db)
    )
    if row is None or not principal.sees_store(row["store"]):
        raise NotFoundException(f"no sale {sale_id} of device {device}")
    return sale_view(row)


ROUTES: list[Any] = [list_sales, get_sale]
