"""Typed payloads of the hub protocol: msgspec structs with a schema version.

Every payload carries `v`. A receiver decodes strictly into the struct for its topic
(`decode`), refuses a newer major version than it knows and never crashes on bad
input: DecodeError says what was wrong. docs/schemas/ holds the JSON Schemas made
from these structs (tests/mqtt/test_schemas.py fails when they drift).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

from appliance.errors import DecodeError

SCHEMA_VERSION = 1

P = TypeVar("P", bound="Payload")


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every payload: `v` is the schema version."""

    v: int = SCHEMA_VERSION


class HubState(Payload, frozen=True, kw_only=True):
    """Retained on pos/v1/hub/state: devices flush their outbox only while online."""

    online: bool
    hub_id: str = ""


class DeviceStatus(Payload, frozen=True, kw_only=True):
    """Retained birth (online) or Last Will (offline); `bd_seq` pairs a will with its birth."""

    device: str
    online: bool
    bd_seq: int
    firmware: str = ""


class SaleEnvelope(Payload, frozen=True, kw_only=True):
    """One outbox row: device sequence, sale id and the stored document (raw JSON)."""

    seq: int
    sale_id: str
    document: msgspec.Raw


class SalesBatch(Payload, frozen=True, kw_only=True):
    """Sales in sequence order; the hub stores each idempotently."""

    device: str
    sales: list[SaleEnvelope]


class SalesAck(Payload, frozen=True, kw_only=True):
    """The highest sequence below which the hub has committed every sale of the device."""

    upto_seq: int


class JournalEntryPayload(Payload, frozen=True, kw_only=True):
    """One fiscal journal entry exactly as the device stores it; `body` is base64."""

    number: int
    kind: str
    at: str
    body: str  # base64 keeps the bytes the entry's hash covers, whatever they hold
    prev_hash: str
    hash: str


class JournalBatch(Payload, frozen=True, kw_only=True):
    """Journal entries in number order; the hub stores each idempotently and verifies the chain."""

    device: str
    entries: list[JournalEntryPayload]


class JournalAck(Payload, frozen=True, kw_only=True):
    """The highest number below which the hub has committed every journal entry of the device."""

    upto_number: int


class JournalReport(Payload, frozen=True, kw_only=True):
    """The device's own journal inside a telemetry message.

    `head` is the newest entry's number, `acked_upto` the highest the hub confirmed;
    `broken_at` the first entry the device's last check could not prove (None: intact,
    or not checked yet) with `problem` saying why.
    """

    head: int
    acked_upto: int
    checked_at: str = ""  # when the device last proved its whole chain; "" when not yet
    broken_at: int | None = None
    problem: str = ""


class DeviceHealthReport(Payload, frozen=True, kw_only=True):
    """One device's health inside a telemetry message."""

    device: str
    kind: str
    state: str
    reason: str = ""


class OfflineCardsReport(Payload, frozen=True, kw_only=True):
    """Card payments approved offline, not yet submitted by the terminal, and their limits.

    Amounts in minor units of `currency`; `blocked` says why they keep card off, or "".
    """

    count: int
    amount: int
    currency: str
    oldest_age_s: float | None = None
    max_per_payment: int
    max_total: int
    max_age_s: float
    blocked: str = ""


class StorageReport(Payload, frozen=True, kw_only=True):
    """The data partition as the device last saw it, from memory (sent even when it fails).

    `state` is ok, low (below the reserve: no new sale starts), full, read_only or io_error.
    """

    state: str
    free_bytes: int
    total_bytes: int
    reserve_bytes: int
    problem: str = ""  # what staff are told, with the numbers; "" when ok


class Telemetry(Payload, frozen=True, kw_only=True):
    """Health on an interval."""

    device: str
    at: str
    firmware: str
    uptime_s: float
    outbox_depth: int
    catalog_version: int
    disk_free_bytes: int
    cpu_temp_c: float | None = None
    malformed_messages: int = 0
    devices: list[DeviceHealthReport] = []
    offline_cards: OfflineCardsReport | None = None  # None when the journal could not be read
    storage: StorageReport | None = None  # None from devices older than the storage watch
    journal: JournalReport | None = None  # None from devices older than the fiscal journal


class ProductPayload(Payload, frozen=True, kw_only=True):
    """A product as the hub sends it; price in minor units."""

    sku: str
    name: str
    price: int
    currency: str
    tax_class: str
    category: str = ""
    age_restriction: int = 0
    stock_tracked: bool = True
    sold_by: Literal["each", "kg"] = "each"
    names: dict[str, str] = {}
    barcodes: list[str] = []
    stock: int | None = None  # the hub's authoritative level, when it corrects it


class CatalogDelta(Payload, frozen=True, kw_only=True):
    """Changes from catalog version `from_version` to `to_version`."""

    kind: Literal["delta"] = "delta"
    from_version: int
    to_version: int
    upserts: list[ProductPayload] = []
    deletes: list[str] = []


class SnapshotChunk(Payload, frozen=True, kw_only=True):
    """Part `chunk` of `chunks` of the whole catalog at `version`."""

    kind: Literal["snapshot"] = "snapshot"
    version: int
    chunk: int
    chunks: int
    products: list[ProductPayload]


class CatalogRequest(Payload, frozen=True, kw_only=True):
    """A device asks for a snapshot, or to resume one from `next_chunk`."""

    have_version: int
    resume_version: int | None = None
    next_chunk: int = 0


CommandName = Literal[
    "lock",
    "unlock",
    "reload_catalog",
    "print_test_page",
    "open_drawer",
    "set_config",
    "collect_logs",
    "reboot",
]
JobState = Literal["QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT"]


class Command(Payload, frozen=True, kw_only=True):
    """A job for one device, signed by the fleet key (Ed25519 over the unsigned fields)."""

    id: str
    device: str
    name: CommandName
    args: dict[str, Any] = {}
    issued_at: str
    expires_at: str
    signature: str = ""  # base64 of the signature; empty when unsigned


class CommandUpdate(Payload, frozen=True, kw_only=True):
    """A command's lifecycle state, with a reason for FAILED and REJECTED."""

    id: str
    state: JobState
    reason: str = ""


class DesiredConfig(Payload, frozen=True, kw_only=True):
    """Retained: the configuration the fleet wants, as a TOML-shaped mapping, versioned."""

    version: int
    config: dict[str, Any]


class ReportedConfig(Payload, frozen=True, kw_only=True):
    """Retained: the version in force, and why a newer desired one was refused."""

    version: int
    rejected_version: int | None = None
    errors: list[str] = []


LogKind = Literal["journal", "ring"]


class LogLines(Payload, frozen=True, kw_only=True):
    """Device → hub on logs_up: the last log lines, oldest first, for one collect_logs command."""

    device: str
    command_id: str
    source: LogKind
    lines: list[str]


_encoder = msgspec.json.Encoder()


def encode(payload: Payload) -> bytes:
    """JSON bytes of a payload."""
    return _encoder.encode(payload)


def decode(data: bytes, kind: type[P]) -> P:
    """Strictly decode a payload; DecodeError on bad JSON, a wrong shape or a newer version."""
    try:
        payload = msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise DecodeError(f"{kind.__name__}: {err}") from err
    except RecursionError:  # absurdly deep nesting from a hostile or broken sender
        raise DecodeError(f"{kind.__name__}: nested too deeply") from None
    if payload.v > SCHEMA_VERSION:
        raise DecodeError(f"{kind.__name__}: schema version {payload.v} is newer than mine")
    return payload


ALL_PAYLOADS: tuple[type[Payload], ...] = (
    HubState,
    DeviceStatus,
    SaleEnvelope,
    SalesBatch,
    SalesAck,
    JournalEntryPayload,
    JournalBatch,
    JournalAck,
    Telemetry,
    ProductPayload,
    CatalogDelta,
    SnapshotChunk,
    CatalogRequest,
    Command,
    CommandUpdate,
    DesiredConfig,
    ReportedConfig,
    LogLines,
)
