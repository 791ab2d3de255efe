"""Sales the hub rejected (unreadable documents, conflicts), as the fleet admin reads them.

The ingest (hub/ingest.py) keeps each one verbatim in `sale_rejection` and names it in
the device's acknowledgement; here they are counted and listed for `appliance-hub sales
rejected` and the fleet views.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import Database, fn

from hub.ingest import utc_text
from hub.models import SaleRejection


@dataclass(frozen=True, slots=True)
class RejectionView:
    """One rejected sale: where it came from, why the hub would not count it, and when."""

    device: str
    seq: int
    sale_id: str
    code: str  # invalid, conflict
    reason: str
    received_at: str  # ISO text, UTC


def rejection_counts(db: Database) -> dict[str, int]:
    """How many sales the hub rejected, per device (devices without any are left out)."""
    query = (
        SaleRejection.select(SaleRejection.device, fn.COUNT(SaleRejection.id))
        .group_by(SaleRejection.device)
        .tuples()
    )
    return {str(device): int(count) for device, count in query.execute(db)}


def rejections(db: Database, device: str | None = None) -> list[RejectionView]:
    """Every rejected sale (of one device, if given), by device and sequence."""
    query = SaleRejection.select(
        SaleRejection.device,
        SaleRejection.seq,
        SaleRejection.sale_id,
        SaleRejection.code,
        SaleRejection.reason,
        SaleRejection.received_at,
    )
    if device is not None:
        query = query.where(SaleRejection.device == device)
    query = query.order_by(SaleRejection.device, SaleRejection.seq, SaleRejection.id)
    return [
        RejectionView(str(d), int(seq), str(sid), str(code), str(reason), utc_text(at))
        for d, seq, sid, code, reason, at in query.tuples().execute(db)
    ]
