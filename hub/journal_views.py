"""What the hub reads out of journal entries: X/Z reports, the drawer log and shift events.

A device's journal body is the event's whole content (a report is TillReport.to_dict()),
so the hub keeps each body verbatim and indexes only what it lists by. Reading is
tolerant: a missing or odd field leaves its column empty rather than refusing the entry,
because the entry is already part of the device's fiscal record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from appliance.core.journal import JournalEntry
from hub.ingest import utc_naive
from hub.models import DrawerOpening, HubModel, ShiftEvent, TillReport

log = logging.getLogger(__name__)

REPORT_KINDS = {"x_report": "x", "z_report": "z"}
SHIFT_KINDS = frozenset({"shift_open", "cash_in", "cash_out", "shift_close"})
REPORT_TOTALS = (
    "sales_gross",
    "refunds_total",
    "voids_total",
    "expected_cash",
    "counted_cash",
    "difference",
    "grand_total",
)


def event_of(entry: JournalEntry) -> dict[str, Any]:
    """The entry's body as a dict ({} when it is not a JSON object)."""
    try:
        decoded = msgspec.json.decode(entry.body)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def moment(value: object, fallback: datetime) -> datetime:
    """An ISO time as naive UTC, or `fallback` when it is none."""
    if isinstance(value, str):
        try:
            return utc_naive(datetime.fromisoformat(value))
        except ValueError:
            pass
    return fallback


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object, limit: int = 128) -> str:
    return str(value)[:limit] if value not in (None, "") else ""


def rows_of(
    device: str, store: str | None, entry: JournalEntry, received: datetime
) -> list[tuple[type[HubModel], dict[str, Any]]]:
    """The rows one entry adds to the hub's views (none for sales and payment steps)."""
    at = moment(entry.at, received)
    event = event_of(entry)
    body = entry.body.decode("utf-8", errors="replace")
    if entry.kind in REPORT_KINDS:
        return [(TillReport, _report(device, store, entry, at))]
    if entry.kind == "drawer":
        row = {
            "device": device,
            "journal_number": entry.number,
            "opened_at": moment(event.get("opened_at"), at),
            "reason": _text(event.get("reason"), 32),
            "staff": _text(event.get("staff")),
            "reference": _text(event.get("reference") or event.get("document_id")),
            "unexplained": event.get("unexplained") is True,
            "body": body,
        }
        return [(DrawerOpening, row)]
    if entry.kind in SHIFT_KINDS:
        row = {
            "device": device,
            "journal_number": entry.number,
            "kind": entry.kind,
            "at": at,
            "shift": _text(event.get("shift_id") or event.get("shift") or event.get("id"), 64),
            "staff": _text(event.get("staff")),
            "amount": _int(
                event.get("amount", event.get("float_total", event.get("counted_total")))
            ),
            "body": body,
        }
        return [(ShiftEvent, row)]
    return []


def _report(device: str, store: str | None, entry: JournalEntry, at: datetime) -> dict[str, Any]:
    # The body is the report itself; accept one wrapped as {"report": {...}} too.
    event = event_of(entry)
    inner = event.get("report")
    report: Mapping[str, Any] = inner if isinstance(inner, dict) else event
    number = _int(report.get("number"))
    if number is None:
        log.warning("device %s journal %d: a report without a number", device, entry.number)
    return {
        "device": device,
        "store": store,
        "kind": REPORT_KINDS[entry.kind],
        "number": number if number is not None else 0,
        "journal_number": entry.number,
        "made_at": moment(report.get("made_at"), at),
        "currency": _text(report.get("currency"), 3),
        **{name: _int(report.get(name)) for name in REPORT_TOTALS},
        "body": entry.body.decode("utf-8", errors="replace"),
    }
