"""Calls for help from kiosks: the worker's handler of up/help, its table, and the open calls.

A device sends each call at every change and its active calls again at every connect, and
two workers may take one device's messages out of order, so a call's row only moves
forward. Its order is the one the kiosk itself follows: open, answered, escalated to
urgent (open again), answered, cleared; cleared is final.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from peewee import JOIN, CharField, Database, DateTimeField, SchemaManager, TextField

from appliance.core.clock import Clock, SystemClock
from appliance.errors import DecodeError
from appliance.mqtt.payloads import HelpCall, decode
from hub.ingest import utc_naive, utc_text
from hub.models import HubModel
from hub.stores import DeviceStore

log = logging.getLogger(__name__)

MAX_TEXT = 500  # characters of a device's detail or name kept


class HelpCallRow(HubModel):
    """The latest state of one call for help."""

    id = CharField(primary_key=True, max_length=64)  # the device's UUIDv7
    device = CharField(max_length=128, index=True)
    reason = CharField(max_length=24)
    urgency = CharField(max_length=8)
    state = CharField(max_length=16, index=True)
    opened_at = DateTimeField()  # naive UTC, as the device stamped it
    cleared_at = DateTimeField(null=True)
    by = TextField(default="")
    detail = TextField(default="")
    updated_at = DateTimeField()  # naive UTC, when the hub stored it

    class Meta:
        table_name = "help_call"


def create_help_tables(db: Database) -> None:
    """Migration 12: the calls for help."""
    SchemaManager(HelpCallRow, database=db).create_all(safe=True)


def _order(state: str, urgency: str) -> tuple[int, int, int]:
    """Where a state lies on a call's way: later states replace earlier ones, never back."""
    return (state == "cleared", urgency == "urgent", state == "answered")


def _when(text: str, what: str) -> datetime | None:
    if not text:
        return None
    try:
        return utc_naive(datetime.fromisoformat(text))
    except ValueError as err:
        raise DecodeError(f"a call for help's {what} is not ISO 8601: {text!r}") from err


class HelpCallLog:
    """Stores HelpCall messages; the worker's handler for up/help. Thread-safe like the ingest."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    def on_call(self, device: str, data: bytes) -> None:
        """A device's call: DecodeError (malformed, nothing stored) when it names another."""
        call = decode(data, HelpCall)
        if call.device != device:
            raise DecodeError(f"a call for help on {device}'s topic names {call.device!r}")
        if not call.id or len(call.id) > 64:
            raise DecodeError(f"a call for help from {device} has no usable id")
        opened = _when(call.opened_at, "opened_at")
        if opened is None:
            raise DecodeError(f"a call for help from {device} has no opened_at")
        cleared = _when(call.cleared_at, "cleared_at")
        fields = {
            HelpCallRow.reason: call.reason,
            HelpCallRow.urgency: call.urgency,
            HelpCallRow.state: call.state,
            HelpCallRow.cleared_at: cleared,
            HelpCallRow.by: call.by[:MAX_TEXT],
            HelpCallRow.detail: call.detail[:MAX_TEXT],
            HelpCallRow.updated_at: utc_naive(self._clock.now()),
        }
        db = self._db
        with db.atomic():
            inserted = (
                HelpCallRow.insert(
                    {
                        HelpCallRow.id: call.id,
                        HelpCallRow.device: device,
                        HelpCallRow.opened_at: opened,
                        **fields,
                    }
                )
                .on_conflict_ignore()
                .execute(db)
            )
            stored = (
                HelpCallRow.select(HelpCallRow.device, HelpCallRow.state, HelpCallRow.urgency)
                .where(HelpCallRow.id == call.id)
                .tuples()
                .execute(db)
            )
            (owner, state, urgency) = stored[0]
            if owner != device:
                raise DecodeError(f"call for help {call.id} from {device} belongs to {owner}")
            if _order(call.state, call.urgency) > _order(str(state), str(urgency)):
                HelpCallRow.update(fields).where(HelpCallRow.id == call.id).execute(db)
            elif not inserted:
                log.debug("call for help %s: %s is not newer than %s", call.id, call.state, state)
                return
        log.info("call for help %s from %s: %s (%s)", call.id, device, call.state, call.urgency)


@dataclass(frozen=True, slots=True)
class HelpCallView:
    """One open or answered call, for the fleet CLI (times as ISO text, UTC)."""

    id: str
    device: str
    store: str | None
    reason: str
    urgency: str
    state: str
    opened_at: str
    by: str
    detail: str


def open_calls(db: Database, store: str | None = None) -> list[HelpCallView]:
    """The calls not cleared yet (of one store's devices), urgent first, then oldest first."""
    query = (
        HelpCallRow.select(HelpCallRow, DeviceStore.store)
        .join(DeviceStore, JOIN.LEFT_OUTER, on=DeviceStore.device == HelpCallRow.device)
        .where(HelpCallRow.state != "cleared")
    )
    if store is not None:
        query = query.where(DeviceStore.store == store)
    rows = query.order_by(HelpCallRow.opened_at, HelpCallRow.id).dicts().execute(db)
    views = [
        HelpCallView(
            id=str(row["id"]),
            device=str(row["device"]),
            store=row["store"],
            reason=str(row["reason"]),
            urgency=str(row["urgency"]),
            state=str(row["state"]),
            opened_at=utc_text(row["opened_at"]),
            by=str(row["by"]),
            detail=str(row["detail"]),
        )
        for row in rows
    ]
    return sorted(views, key=lambda v: v.urgency != "urgent")  # stable: oldest first within
