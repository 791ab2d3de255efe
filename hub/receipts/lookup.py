"""Finding the one sale an e-receipt token opens, and whether it has expired or is still coming.

The same answer (None) is given for a token that is malformed, unknown, expired, or whose
sale never came: the caller cannot tell them apart, so neither can whoever guesses links.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from peewee import JOIN, Database

from appliance.core.ids import UNKNOWN_TOKEN_TIME, receipt_token_time
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
# Tokens of unknown time remembered at most, and for at most this long: anyone may ask
# for made-up ones, so the memory is bounded, and a forgotten one is simply waited for anew.
FIRST_SEEN_LIMIT = 10_000
FIRST_SEEN_FOR = timedelta(days=1)

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


class FirstSeen:
    """When each token of unknown time was first asked for; bounded, thread-safe."""

    def __init__(self, limit: int = FIRST_SEEN_LIMIT, keep: timedelta = FIRST_SEEN_FOR) -> None:
        self._limit = limit
        self._keep = keep
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, datetime] = OrderedDict()  # oldest first

    def first(self, key: str, now: datetime) -> datetime:
        """When `key` was first asked for; `now` if never (or no longer remembered)."""
        with self._lock:
            while self._seen:
                oldest = next(iter(self._seen.values()))
                if now - oldest < self._keep and len(self._seen) < self._limit:
                    break
                self._seen.popitem(last=False)
            return self._seen.setdefault(key, now)


def _utc(value: datetime | str) -> datetime:
    # SQLite may hand back text; either way the hub stores naive UTC.
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def find_receipt(
    db: Database,
    token: str,
    now: datetime,
    rules: ReceiptRules,
    first_seen: FirstSeen | None = None,
) -> Found | Pending | None:
    """The sale `token` opens, a wait for one on its way, or None (unknown or expired).

    A token made without a verified clock is waited for from when `first_seen` first
    saw it asked for (without one, not at all).
    """
    made = receipt_token_time(token)
    if made is None:
        return None  # not even shaped like a token: no query
    hashed = token_hash(token)
    query: Any = (
        ReceiptToken.select(
            Sale.document, Sale.store, Sale.created_at, Sale.received_at, Sale.clock_verified
        )
        .join(
            Sale,
            JOIN.LEFT_OUTER,
            on=(ReceiptToken.device == Sale.device) & (ReceiptToken.sale_id == Sale.sale_id),
        )
        .where(ReceiptToken.token_hash == hashed)
        .tuples()
    )
    rows = list(query.execute(db))
    if rows:
        text, store, created_at, received_at, clock_verified = rows[0]
        if text is None:
            return None  # a token two sales claimed opens neither, and is not waited for
        # A sale stamped by an unset clock counts from when it arrived instead.
        start = _utc(created_at if clock_verified else received_at)
        expires_at = start + rules.keep
        if now >= expires_at:
            return None
        return Found(_document.decode(str(text)), store, expires_at)
    if made == UNKNOWN_TOKEN_TIME:
        if first_seen is None:
            return None
        made = first_seen.first(hashed, now)
    until = made + rules.wait
    if made - CLOCK_SLACK <= now < until:
        return Pending(until)
    return None
