"""The `data` of each webhook event type, built from what the hub stores.

Times are RFC 3339 UTC with `Z`, money integer minor units beside its currency. A sale
is the API's Sale (lines, taxes and tenders from the device's own document), so a
receiver reads the same shape from a webhook as from GET /api/v1/sales.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

from appliance.mqtt.payloads import DeviceStatus
from hub.api.sales import Sale, sale_view
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


class StockData(msgspec.Struct, kw_only=True):
    """stock.changed (on a sale): a product's level in a store after the sale landed."""

    store: str
    sku: str
    level: int
    cause: Literal["sale"] = "sale"  # the stock API's events name a movement or a count
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


def sale_data(row: Mapping[str, Any]) -> Sale:
    """The data of a new sale row: the sale as GET /api/v1/sales/{device}/{id} shows it."""
    return sale_view(row)


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
