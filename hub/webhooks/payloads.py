"""The `data` of each webhook event type, built from what the hub stores.

Times are RFC 3339 UTC with `Z`, money integer minor units beside its currency. A sale's
lines, taxes and tenders are the device's own document's (SaleDocument), so a receiver
sees what the receipt said.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from appliance.mqtt.payloads import (
    DeviceStatus,
    SaleDocument,
    SaleDocumentLine,
    SaleDocumentTax,
    SaleDocumentTender,
)
from hub.webhooks.events import (
    REFUND_CREATED,
    SALE_CREATED,
    SALE_VOIDED,
    rfc3339,
)

# A sale row's kind -> its event type.
SALE_EVENT_TYPES: dict[str, str] = {
    "sale": SALE_CREATED,
    "refund": REFUND_CREATED,
    "void": SALE_VOIDED,
}

_document_decoder = msgspec.json.Decoder(SaleDocument)


class SaleData(msgspec.Struct, kw_only=True):
    """sale.created, refund.created, sale.voided: one committed document of a device."""

    id: str  # the device's sale id, unique per device
    kind: str  # sale, refund or void
    device: str
    store: str | None  # the device's store when the sale arrived
    seq: int  # the device's sequence number of the document
    receipt_number: str
    created_at: str  # when the device committed it
    received_at: str  # when the hub stored it
    clock_verified: bool  # False: stamped before the device's clock was known right
    currency: str
    total: int
    discount_total: int
    rounding: int
    prices_include_tax: bool
    staff: str
    references: str | None  # a refund's or void's original sale id
    reason: str
    lines: list[SaleDocumentLine]
    taxes: list[SaleDocumentTax]
    tenders: list[SaleDocumentTender]


class StockData(msgspec.Struct, kw_only=True):
    """stock.changed (on a sale): a product's level in a store after the sale landed."""

    store: str
    sku: str
    level: int
    cause: str  # "sale" here; the stock API says what it changed ("goods_in", ...)
    sale_id: str  # the last sale of the batch that moved it
    device: str


class DeviceData(msgspec.Struct, kw_only=True):
    """device.online and device.offline: a birth or a current will, as recorded."""

    device: str
    online: bool
    bd_seq: int  # the session the status belongs to: a will pairs with its birth
    firmware: str
    store: str | None
    at: str  # when the hub recorded it


def to_data(value: msgspec.Struct) -> dict[str, Any]:
    """An event's data as plain JSON values."""
    return msgspec.to_builtins(value)  # type: ignore[no-any-return]


def sale_data(row: Mapping[str, Any]) -> SaleData:
    """The data of a new sale row (as SalesIngest hands them to on_stored)."""
    doc = _document_decoder.decode(row["document"])
    return SaleData(
        id=str(row["sale_id"]),
        kind=doc.kind,
        device=str(row["device"]),
        store=row.get("store"),
        seq=int(row["seq"]),
        receipt_number=doc.receipt_number,
        created_at=rfc3339(_moment(row["created_at"])),
        received_at=rfc3339(_moment(row["received_at"])),
        clock_verified=bool(row.get("clock_verified", True)),
        currency=doc.currency,
        total=doc.total,
        discount_total=doc.discount_total,
        rounding=doc.rounding,
        prices_include_tax=doc.prices_include_tax,
        staff=doc.staff,
        references=doc.references,
        reason=doc.reason,
        lines=list(doc.lines),
        taxes=list(doc.taxes),
        tenders=list(doc.tenders),
    )


def device_data(status: DeviceStatus, store: str | None, at: datetime) -> DeviceData:
    """The data of a recorded birth or will."""
    return DeviceData(
        device=status.device,
        online=status.online,
        bd_seq=status.bd_seq,
        firmware=status.firmware,
        store=store,
        at=rfc3339(at),
    )


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
