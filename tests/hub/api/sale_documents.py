"""Sales as devices commit them, stored through the hub's own ingest, for the API's tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import msgspec
from peewee import Database

from appliance.core.sale import Sale, SaleLine
from appliance.core.tax import TaxLine
from appliance.core.tender import Tender
from appliance.mqtt.payloads import SaleEnvelope, SalesBatch
from appliance.store.documents import encode_document
from hub.ingest import SalesIngest
from hub.stores import assign_device
from tests.hub.test_ingest import START, batch, sale_id_of


class FixedClock:
    """The hub's clock, stopped at a moment the test sets."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The set moment."""
        return self.at

    def monotonic(self) -> float:
        """Seconds of the set moment."""
        return self.at.timestamp()


def card_sale(device: str, seq: int, *, at: datetime = START) -> Sale:
    """A two-line sale over two tax rates (one line weighed), paid by card."""
    return Sale(
        id=sale_id_of(device, seq),
        kind="sale",
        device_id=device,
        created_at=at,
        currency="EUR",
        prices_include_tax=True,
        tax_rounding="line",
        lines=(
            SaleLine(
                1, "COF-1", "Coffee", 2, "each", 250, 0, 500, "std", 1900, True, "4006381333931"
            ),
            SaleLine(2, "BAN-1", "Bananas", 1200, "weight", 199, 0, 239, "reduced", 700, False),
        ),
        taxes=(TaxLine("std", 1900, 420, 80, 500), TaxLine("reduced", 700, 223, 16, 239)),
        discount_total=0,
        total=739,
        tenders=(Tender("card", 739, reference="TID-42/0815", card_mask="**** **** **** 1234"),),
        sequence=seq,
        receipt_number=f"R-{seq:06d}",
        staff="anna",
    )


def refund_of(original: Sale, seq: int, *, at: datetime) -> Sale:
    """A refund of the original's first line, in cash."""
    line = original.lines[0]
    return replace(
        original,
        id=sale_id_of(original.device_id, seq),
        kind="refund",
        created_at=at,
        lines=(replace(line, quantity=-1, amount=-250, refers_to_line=line.line_no),),
        taxes=(TaxLine("std", 1900, -210, -40, -250),),
        total=-250,
        tenders=(Tender("cash", -250),),
        sequence=seq,
        receipt_number=f"R-{seq:06d}",
        references=original.id,
        reason="damaged",
    )


def store_documents(
    db: Database, device: str, documents: Sequence[Sale], *, received: datetime | None = None
) -> None:
    """Ingest documents of one device, as its outbox would send them."""
    envelopes = [
        SaleEnvelope(seq=d.sequence, sale_id=d.id, document=msgspec.Raw(encode_document(d)))
        for d in documents
    ]
    clock = FixedClock(received) if received else None
    SalesIngest(db, clock=clock).ingest(device, SalesBatch(device=device, sales=envelopes))


def store_sales(
    db: Database,
    device: str,
    seqs: Sequence[int],
    *,
    store: str | None = None,
    received: datetime | None = None,
) -> None:
    """Ingest plain cash sales of a device (created at START + seq minutes), in `store`."""
    if store is not None:
        assign_device(db, device, store)
    clock = FixedClock(received) if received else None
    for start in range(0, len(seqs), 500):
        SalesIngest(db, clock=clock).ingest(device, batch(device, seqs[start : start + 500]))


def minutes(n: int) -> datetime:
    """START plus n minutes."""
    return START + timedelta(minutes=n)


def rfc3339(moment: datetime) -> str:
    """A UTC moment as the API writes it."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
