"""Identifiers made on the device."""

from __future__ import annotations

import uuid6


def new_document_id() -> str:
    """A UUIDv7: time-ordered, so ids made offline sort by creation across devices."""
    return str(uuid6.uuid7())


def receipt_number(prefix: str, sequence: int) -> str:
    """The human receipt number printed on paper, e.g. "K01-000123"."""
    return f"{prefix}-{sequence:06d}"
