"""Journal entries as a device chains them, and the batches that carry them to the hub."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from appliance.core.journal import JournalEntry, canonical, next_entry
from appliance.mqtt.journal_uploader import entry_payload
from appliance.mqtt.payloads import JournalBatch

AT = "2030-03-0{day}T{hour:02d}:00:00+00:00"


def z_report(number: int, *, device: str = "kiosk-1", sales: int = 12_345) -> dict[str, Any]:
    """A Z report body shaped like TillReport.to_dict()."""
    return {
        "kind": "z",
        "number": number,
        "device": device,
        "shift_id": f"shift-{number}",
        "shift_number": number,
        "staff": "ana",
        "currency": "EUR",
        "opened_at": f"2030-03-0{number}T08:00:00+00:00",
        "made_at": f"2030-03-0{number}T18:00:00+00:00",
        "tenders": {"card": sales - 2_000, "cash": 2_000},
        "taxes": [{"rate": 1900, "net": 10_374, "tax": 1_971, "gross": sales}],
        "sales_count": 5,
        "sales_gross": sales,
        "refunds_count": 0,
        "refunds_total": 0,
        "voids_count": 0,
        "voids_total": 0,
        "discounts": 0,
        "rounding": 0,
        "drawer_with_sale": 2,
        "drawer_without_sale": 1,
        "drawer_unexplained": 0,
        "cash_in": 0,
        "cash_out": 0,
        "float_total": 10_000,
        "expected_cash": 12_000,
        "counted_cash": 11_990,
        "difference": -10,
        "grand_total": sales * number,
        "signed_off_by": "",
    }


def chain(
    events: Sequence[tuple[str, Mapping[str, Any]]], *, after: JournalEntry | None = None
) -> list[JournalEntry]:
    """Entries chaining `events` (kind, event) after `after` (None: from the start)."""
    entries: list[JournalEntry] = []
    previous = after
    for kind, event in events:
        number = (previous.number if previous else 0) + 1
        at = AT.format(day=1 + number // 24 % 9, hour=number % 24)
        previous = next_entry(previous, kind, at, canonical(event))
        entries.append(previous)
    return entries


def day(number: int) -> list[tuple[str, dict[str, Any]]]:
    """A small day of events: a shift, a sale, a no-sale opening, cash in, close, Z."""
    return [
        ("shift_open", {"shift_id": f"shift-{number}", "staff": "ana", "float_total": 10_000}),
        ("sale", {"document_id": f"doc-{number}", "total": 12_345, "currency": "EUR"}),
        ("drawer", {"reason": "sale", "staff": "", "reference": f"doc-{number}"}),
        ("drawer", {"reason": "no_sale", "staff": "ana", "reference": ""}),
        ("cash_in", {"shift_id": f"shift-{number}", "amount": 500, "staff": "ana"}),
        ("shift_close", {"shift_id": f"shift-{number}", "staff": "ana"}),
        ("z_report", z_report(number)),
    ]


def batch(device: str, entries: Sequence[JournalEntry]) -> JournalBatch:
    """The batch a device would send."""
    return JournalBatch(device=device, entries=[entry_payload(e) for e in entries])


def tampered(entry: JournalEntry, body: bytes) -> JournalEntry:
    """The entry with its body edited and nothing else (what an editor of the row does)."""
    return replace(entry, body=body)
