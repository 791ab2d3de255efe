"""Finding the one sale an e-receipt token opens, and whether it has expired or is still coming.

The same answer (None) is given for a token that is malformed, unknown, expired, or whose
sale never came: the caller cannot tell them apart, so neither can whoever guesses links.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from peewee import Database

from appliance.core.ids import receipt_token_time
from appliance.mqtt.payloads import SaleDocument
from hub.models import Sale
from hub.receipts.models import ReceiptToken, token_hash

DEFAULT_KEEP_DAYS = 90
# A kiosk sends a sale within seconds when online; this long after the token was made the
# page stops waiting for it (a kiosk offline for longer: its customer tries again later).
DEFAULT_WAIT = timedelta(minutes=15)
# A device's clock may run somewhat ahead of the hub's: a token "from the future" by this
# much is still one that may be on its way.
CLOCK_SLACK = timedelta(minutes=5)

_document = msgspec.json.Decoder(SaleDocument)


@dataclass(frozen=True, slots=True)
class StoreDetails:
    """What a receipt says about the store that sold: name, address lines, tax id."""

    name: str = ""
    address: tuple[str, ...] = ()
    tax_id: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptRules:
    """How long links work, how long a missing sale is waited for, and the stores' details."""

    keep: timedelta = timedelta(days=DEFAULT_KEEP_DAYS)
    wait: timedelta = DEFAULT_WAIT
    refresh_s: int = 5  # how often the waiting page reloads itself
    locale: str = "en_GB"  # how amounts and dates are written
    stores: Mapping[str, StoreDetails] = field(default_factory=dict)  # by the hub's store id


@dataclass(frozen=True, slots=True)
class Found:
    """The sale the token opens, its store at the hub, and when its link stops working."""

    document: SaleDocument
    store: str | None
    expires_at: datetime  # UTC


@dataclass(frozen=True, slots=True)
class Pending:
    """The token may belong to a sale not at the hub yet; the page waits until `until`."""

    until: datetime  # UTC


def _utc(value: datetime | str) -> datetime:
    # SQLite may hand back text; either way the hub stores naive UTC.
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def find_receipt(
    db: Database, token: str, now: datetime, rules: ReceiptRules
) -> Found | Pending | None:
    """The sale `token` opens, a wait for one on its way, or None (unknown or expired)."""
    made = receipt_token_time(token)
    if made is None:
        return None  # not even shaped like a token: no query
    query: Any = (
        Sale.select(
            Sale.document, Sale.store, Sale.created_at, Sale.received_at, Sale.clock_verified
        )
        .join(
            ReceiptToken,
            on=(ReceiptToken.device == Sale.device) & (ReceiptToken.sale_id == Sale.sale_id),
        )
        .where(ReceiptToken.token_hash == token_hash(token))
        .tuples()
    )
    rows = list(query.execute(db))
    if rows:
        text, store, created_at, received_at, clock_verified = rows[0]
        # A sale stamped by an unset clock counts from when it arrived instead.
        start = _utc(created_at if clock_verified else received_at)
        expires_at = start + rules.keep
        if now >= expires_at:
            return None
        return Found(_document.decode(str(text)), store, expires_at)
    until = made + rules.wait
    if made - CLOCK_SLACK <= now < until:
        return Pending(until)
    return None
