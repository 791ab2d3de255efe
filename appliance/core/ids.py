"""Identifiers made on the device."""

from __future__ import annotations

import secrets
import threading
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_VERSION_MASK = 0xF << 76
_VARIANT_MASK = 0b11 << 62
_MS_MASK = (1 << 48) - 1


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
