"""Identifiers made on the device."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from datetime import UTC, datetime

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_VERSION_MASK = 0xF << 76
_VARIANT_MASK = 0b11 << 62
_MS_MASK = (1 << 48) - 1
_TOKEN_STAMP_HEX = 8  # seconds since 1970 in hex: enough until 2106
_TOKEN_RANDOM_BYTES = 16  # 128 bits: not found by guessing, however many are tried
_TOKEN_RANDOM_CHARS = 22  # what token_urlsafe makes of them
# The time of a token made while the device's clock was not verified: read as "unknown".
UNKNOWN_TOKEN_TIME = datetime.fromtimestamp(0, UTC)
_URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class _Uuid7Source:
    """RFC 9562 UUIDv7 with a strictly rising millisecond field; thread-safe."""

    # The stdlib gains uuid7 only in 3.14, and the uuid6 package imports importlib.metadata,
    # email and socket at import time, which the core must not load (tests/core/test_layering.py).

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0

    def next(self) -> uuid.UUID:
        """A new UUIDv7; later calls sort after earlier ones, even within one millisecond."""
        with self._lock:
            ms = max(time.time_ns() // 1_000_000, self._last_ms + 1)
            self._last_ms = ms
        value = (ms & _MS_MASK) << 80 | secrets.randbits(80)
        value = value & ~_VERSION_MASK & ~_VARIANT_MASK | _VERSION_7 | _VARIANT_RFC
        return uuid.UUID(int=value)


_uuid7 = _Uuid7Source()


def new_document_id() -> str:
    """A UUIDv7: time-ordered, so ids made offline sort by creation across devices."""
    return str(_uuid7.next())


def receipt_number(prefix: str, sequence: int) -> str:
    """The human receipt number printed on paper, e.g. "K01-000123"."""
    return f"{prefix}-{sequence:06d}"


def new_receipt_token(at: datetime | None) -> str:
    """The secret of a sale's e-receipt link: its moment in hex, then 128 random bits.

    The moment (naive counts as UTC) lets the hub tell a link whose sale may still be on
    its way from one that will never come, without storing anything for unknown links.
    None (a clock not verified) stamps UNKNOWN_TOKEN_TIME: a wrong time would have the
    hub turn the link away at once, or wait for it far too long.
    """
    if at is None:
        stamp = 0
    else:
        moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        stamp = max(0, int(moment.timestamp()))
    return f"{stamp:0{_TOKEN_STAMP_HEX}x}{secrets.token_urlsafe(_TOKEN_RANDOM_BYTES)}"


def receipt_token_time(token: str) -> datetime | None:
    """The moment a receipt token was made (UTC; UNKNOWN_TOKEN_TIME), or None when not one."""
    stamp, rest = token[:_TOKEN_STAMP_HEX], token[_TOKEN_STAMP_HEX:]
    if len(rest) != _TOKEN_RANDOM_CHARS or not _URLSAFE.issuperset(rest):
        return None
    if len(stamp) != _TOKEN_STAMP_HEX or not set(stamp) <= set("0123456789abcdef"):
        return None
    return datetime.fromtimestamp(int(stamp, 16), UTC)
