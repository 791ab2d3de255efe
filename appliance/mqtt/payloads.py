"""Typed payloads of the hub protocol: msgspec structs with a schema version.

Every payload carries `v`. A receiver decodes strictly into the struct for its topic
(`decode`), refuses a newer major version than it knows and never crashes on bad
input: DecodeError says what was wrong. docs/schemas/ holds the JSON Schemas made
from these structs (tests/mqtt/test_schemas.py fails when they drift).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from appliance.core.bagging import MAX_BAG_GRAMS, MAX_BAG_TOLERANCE
from appliance.core.remote_approval import RemoteAction
from appliance.errors import DecodeError

SCHEMA_VERSION = 1
# Every integer of the protocol fits an IEEE double exactly, so a receiver in any
# language (JavaScript's numbers, a BIGINT column) holds it without loss or overflow.
MAX_SAFE = 2**53 - 1
MAX_REJECTIONS_PER_ACK = 100  # a SalesAck lists at most this many rejected sales

P = TypeVar("P", bound="Payload")

Count = Annotated[int, Meta(ge=0, le=MAX_SAFE)]
Positive = Annotated[int, Meta(ge=1, le=MAX_SAFE)]
Amount = Annotated[int, Meta(ge=-MAX_SAFE, le=MAX_SAFE)]  # minor units, quantities
Seconds = Annotated[float, Meta(ge=0, le=1e12)]  # finite: JSON has no infinity
Celsius = Annotated[float, Meta(ge=-273.15, le=1000)]
SaleId = Annotated[str, Meta(min_length=1, max_length=64)]  # the hub's column holds 64
# A newer version is refused at every level: a nested struct's `v` counts too.
SchemaVersion = Annotated[int, Meta(ge=1, le=SCHEMA_VERSION)]


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every payload: `v` is the schema version."""

    v: SchemaVersion = SCHEMA_VERSION


class HubState(Payload, frozen=True, kw_only=True):
    """Retained on pos/v1/hub/state: devices flush their outbox only while online."""

    online: bool
    hub_id: str = ""


class DeviceStatus(Payload, frozen=True, kw_only=True):
    """Retained birth (online) or Last Will (offline); `bd_seq` pairs a will with its birth."""

    device: str
    online: bool
    bd_seq: Count
    firmware: str = ""
    # The screen it runs: a self-checkout kiosk, or a staffed till or tablet (which sees
    # its store's calls for help); "" from devices older than the field.
    screen: Literal["", "kiosk", "staff"] = ""


class SaleDocumentLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a sale document (negative quantities on refunds and voids)."""

    line_no: Positive
    sku: str
    name: str
    quantity: Amount  # items, or grams when weighed
    measure: Literal["each", "price", "weight"]
    unit_price: Amount
    discount: Amount
    amount: Amount
    tax_class: str
    tax_rate: Count  # basis points
    stock_tracked: bool = True
    barcode: str | None = None
    refers_to_line: Positive | None = None


class SaleDocumentTax(msgspec.Struct, frozen=True, kw_only=True):
    """Net, tax and gross of one tax class."""

    tax_class: str
    rate: Count
    net: Amount
    tax: Amount
    gross: Amount


class SaleDocumentTender(msgspec.Struct, frozen=True, kw_only=True):
    """One payment of a sale document."""

    kind: Literal["card", "cash", "stored_value"]
    amount: Amount
    tendered: Amount = 0
    reference: str = ""
    card_mask: str = ""


class SaleDocument(msgspec.Struct, frozen=True, kw_only=True):
    """The shape the hub requires of `SaleEnvelope.document` (the device's committed sale).

    Unknown fields are kept (the bytes are stored verbatim) and ignored.
    """

    id: str
    kind: Literal["sale", "refund", "void"]
    device_id: str
    created_at: str  # ISO 8601 with its offset
    currency: Annotated[str, Meta(min_length=3, max_length=3)]
    prices_include_tax: bool
    tax_rounding: Literal["line", "total"]
    lines: list[SaleDocumentLine]
    taxes: list[SaleDocumentTax]
    discount_total: Amount
    total: Amount
    tenders: list[SaleDocumentTender]
    sequence: Positive
    receipt_number: str
    staff: str = ""
    references: str | None = None
    reason: str = ""
    rounding: Amount = 0
    approved_by: str = ""
    clock_verified: bool = True
    # The e-receipt link's secret; "" from devices that make none (refunds, older firmware).
    receipt_token: str = ""


class SaleEnvelope(Payload, frozen=True, kw_only=True):
    """One outbox row: device sequence, sale id and the stored document (raw JSON)."""

    seq: Positive
    sale_id: SaleId
    # Kept as the device's exact bytes; its shape is SaleDocument (checked by the hub).
    document: Annotated[
        msgspec.Raw,
        Meta(
            description="The committed sale document, verbatim: a SaleDocument.",
            extra_json_schema={"$ref": "SaleDocument.json"},
        ),
    ]


class SalesBatch(Payload, frozen=True, kw_only=True):
    """Sales in sequence order; the hub stores each idempotently."""

    device: str
    sales: list[SaleEnvelope]
    # The highest upto_seq the device has applied; the ack lists every rejection above it.
    acked_upto: Count | None = None


class SaleRejection(Payload, frozen=True, kw_only=True):
    """A sale the hub holds apart and will not count: invalid, or in conflict with another."""

    seq: Positive
    sale_id: SaleId
    code: Literal["invalid", "conflict"]
    reason: str


class SalesAck(Payload, frozen=True, kw_only=True):
    """The highest sequence up to which the hub holds every sale; rejected ones are listed."""

    upto_seq: Count
    rejected: list[SaleRejection] = []


class JournalEntryPayload(Payload, frozen=True, kw_only=True):
    """One fiscal journal entry exactly as the device stores it; `body` is base64."""

    number: Positive
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

    upto_number: Count


class JournalReport(Payload, frozen=True, kw_only=True):
    """The device's own journal inside a telemetry message.

    `head` is the newest entry's number, `acked_upto` the highest the hub confirmed;
    `broken_at` the first entry the device's last check could not prove (None: intact,
    or not checked yet) with `problem` saying why.
    """

    head: Count
    acked_upto: Count
    checked_at: str = ""  # when the device last proved its whole chain; "" when not yet
    broken_at: Positive | None = None
    problem: str = ""


class DeviceHealthReport(Payload, frozen=True, kw_only=True):
    """One device's health inside a telemetry message."""

    device: str
    kind: str
    state: str
    reason: str = ""


class BaggingReport(Payload, frozen=True, kw_only=True):
    """The bagging-area check since the appliance started: alerts and what ended them."""

    mode: Literal["off", "log_only", "enforce"]
    unexpected_item: Count = 0
    item_removed: Count = 0
    not_bagged: Count = 0
    put_right: Count = 0  # alerts the customer put right before staff came
    cleared: Count = 0  # staff accepted the bag as it was
    skipped_item: Count = 0  # staff: skip bagging for this item
    skipped_sale: Count = 0  # staff: skip bagging for the rest of the sale


class StoredValueReport(Payload, frozen=True, kw_only=True):
    """Stored-value card debits taken offline, or given back, that the hub has not answered."""

    # Money the hub's balances do not show yet; amounts in minor units of `currency`.

    debits: Count
    debit_amount: Count
    voids: Count = 0  # debits given back (a sale that could not be stored after its debit)
    void_amount: Count = 0
    currency: str
    oldest_age_s: Seconds | None = None  # how long the oldest of them has waited


class OfflineCardsReport(Payload, frozen=True, kw_only=True):
    """Card payments approved offline, not yet submitted by the terminal, and their limits.

    Amounts in minor units of `currency`; `blocked` says why they keep card off, or "".
    """

    count: Count
    amount: Amount
    currency: str
    oldest_age_s: Seconds | None = None
    max_per_payment: Amount
    max_total: Amount
    max_age_s: Seconds
    blocked: str = ""


class StorageReport(Payload, frozen=True, kw_only=True):
    """The data partition as the device last saw it, from memory (sent even when it fails).

    `state` is ok, low (below the reserve: no new sale starts), full, read_only or io_error.
    """

    state: str
    free_bytes: Count
    total_bytes: Count
    reserve_bytes: Count
    problem: str = ""  # what staff are told, with the numbers; "" when ok


class Telemetry(Payload, frozen=True, kw_only=True):
    """Health on an interval."""

    device: str
    at: str
    firmware: str
    uptime_s: Seconds
    outbox_depth: Count
    catalog_version: Count
    disk_free_bytes: Count
    cpu_temp_c: Celsius | None = None
    malformed_messages: Count = 0
    devices: list[DeviceHealthReport] = []
    offline_cards: OfflineCardsReport | None = None  # None when the journal could not be read
    storage: StorageReport | None = None  # None from devices older than the storage watch
    journal: JournalReport | None = None  # None from devices older than the fiscal journal
    quarantined_sales: Count = 0  # sales the hub rejected, held on the device for staff
    catalog_store: str = ""  # the store whose catalog the device holds ("" none yet)
    image_version: str = ""  # the flashable image the device runs from ("" not from one)
    locked: bool = False  # a fleet command locked the kiosk: it sells nothing until unlocked
    bagging: BaggingReport | None = None  # None: the kiosk does not check its bagging area
    stored_value: StoredValueReport | None = None  # None: an older device, or not read


MAX_DESCRIPTION = 4000  # characters
BagGrams = Annotated[int, Meta(ge=1, le=MAX_BAG_GRAMS)]
BagTolerance = Annotated[int, Meta(ge=0, le=MAX_BAG_TOLERANCE)]
MAX_THUMBNAIL_BYTES = 48 * 1024


class ProductPayload(Payload, frozen=True, kw_only=True):
    """A product as the hub sends it; price in minor units."""

    sku: str
    name: str
    price: Count
    currency: str
    tax_class: str
    category: str = ""
    age_restriction: Annotated[int, Meta(ge=0, le=255)] = 0
    stock_tracked: bool = True
    sold_by: Literal["each", "kg"] = "each"
    names: dict[str, str] = {}
    barcodes: list[str] = []
    stock: Amount | None = None  # the hub's authoritative level, when it corrects it
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION)] = ""
    # The product's picture as a small JPEG sized for the kiosk's screen (base64 in JSON);
    # empty: none. The device keeps it on disk, never in memory.
    thumbnail: Annotated[bytes, Meta(max_length=MAX_THUMBNAIL_BYTES)] = b""
    # The bagging-area check: grams one item adds to the bag (None: not known) and the grams
    # either way allowed (None: the store's default).
    bag_grams: BagGrams | None = None
    bag_tolerance: BagTolerance | None = None


class CatalogDelta(Payload, frozen=True, kw_only=True):
    """Changes from catalog version `from_version` to `to_version` of `store`."""

    kind: Literal["delta"] = "delta"
    store: str = ""  # versions count per store: a delta applies only to the same store's
    from_version: Count
    to_version: Positive
    upserts: list[ProductPayload] = []
    deletes: list[str] = []


class SnapshotChunk(Payload, frozen=True, kw_only=True):
    """Part `chunk` of `chunks` of the whole catalog of `store` at `version`."""

    kind: Literal["snapshot"] = "snapshot"
    store: str = ""
    version: Positive
    chunk: Count
    chunks: Positive
    products: list[ProductPayload]
    # Apply whatever version is held: the hub's line is behind the device's (a hub
    # database restored from a backup), and the hub's catalog is the truth.
    rebase: bool = False


class CatalogStatus(Payload, frozen=True, kw_only=True):
    """The answer to a catalog request when there is nothing to send."""

    kind: Literal["status"] = "status"
    store: str = ""  # the device's store ("" when it is in none)
    version: Count = 0  # that store's current version
    state: Literal["current", "no_store"]


class CatalogRequest(Payload, frozen=True, kw_only=True):
    """A device asks what changed since the version it holds, or to resume a snapshot."""

    have_version: Count
    have_store: str = ""  # the store whose catalog `have_version` is ("" none)
    resume_version: Positive | None = None
    next_chunk: Count = 0
    # The MQTT Maximum Packet Size the device announced: every answer fits within it.
    max_packet: Positive | None = None


CommandName = Literal[
    "lock",
    "unlock",
    "reload_catalog",
    "print_test_page",
    "open_drawer",
    "set_config",
    "collect_logs",
    "reboot",
    "update",
    "approve_help",
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

    version: Positive
    config: dict[str, Any]


class ReportedConfig(Payload, frozen=True, kw_only=True):
    """Retained: the version in force, and why a newer desired one was refused."""

    version: Count
    rejected_version: Positive | None = None
    errors: list[str] = []


UpdateState = Literal[
    "offered", "downloading", "downloaded", "trying", "committed", "rolled_back", "rejected"
]


class UpdateReport(Payload, frozen=True, kw_only=True):
    """Device → hub on update_up: where an update job stands (docs/protocol.md, Updates)."""

    # Sent at each change of state, every few percent while downloading, and again at each
    # connect for the job in hand (so a hub that missed one learns it); QoS 1, not retained.

    device: str
    job: str  # the update command's id
    version: str  # the release being installed
    state: UpdateState
    running: str = ""  # the release this device runs now
    done: Count = 0  # bytes of the payload downloaded and verified
    total: Count = 0  # bytes of the payload
    reason: str = ""  # why: rolled_back and rejected always say


HelpReason = Literal["customer", "age_check", "bagging", "payment_in_doubt", "paper_out"]
HelpUrgency = Literal["help", "urgent"]
HelpState = Literal["open", "answered", "cleared"]


class HelpCall(Payload, frozen=True, kw_only=True):
    """Device → hub on help_up: a call for help at a kiosk (docs/protocol.md, Calls for help)."""

    # Sent at each change (QoS 1, not retained) and the active ones again at each connect;
    # the hub keeps the latest of each call, so a repeat or a late duplicate is harmless.

    device: str
    id: str  # the call's UUIDv7, made on the device
    reason: HelpReason
    urgency: HelpUrgency
    state: HelpState
    opened_at: str  # ISO 8601 with its offset
    cleared_at: str = ""  # "" until cleared
    by: str = ""  # who answered or cleared it: a staff member's name, or "kiosk"
    detail: str = ""  # what the kiosk saw, for staff


class HelpBoard(Payload, frozen=True, kw_only=True):
    """Hub → staff device on help_board: its store's calls for help not cleared yet, whole."""

    # Sent to every staff device of the store at each change of a call and at each birth of
    # the staff device or of a kiosk of the store; each message replaces the one before.

    store: str
    at: str  # ISO 8601 UTC, when the hub read the calls: an older board is stale
    calls: list[HelpCall] = []  # urgent first, then oldest first
    offline: list[str] = []  # the store's devices that are offline now


class HelpApproval(Payload, frozen=True, kw_only=True):
    """Staff device → hub on help_approval_up: a member of staff answers a kiosk's call."""

    id: str  # the request's UUIDv7, made on the staff device; answers name it
    device: str  # the staff device itself
    kiosk: str
    call: str  # the call's id
    reason: HelpReason
    action: RemoteAction
    staff_id: str
    staff_name: str
    role: Literal["cashier", "supervisor"]


ApprovalState = Literal["sent", "refused", "succeeded", "failed", "timed_out"]


class HelpApprovalAnswer(Payload, frozen=True, kw_only=True):
    """Hub → staff device on help_approval_answer: what became of a HelpApproval."""

    id: str  # the HelpApproval's id
    state: ApprovalState
    reason: str = ""  # why refused, failed or timed out; what the kiosk did when it succeeded
    command: str = ""  # the signed command's id, once sent
    expires_at: str = ""  # when the kiosk's command expires (sent): then staff walk over


CardKey = Annotated[str, Meta(min_length=1, max_length=64)]  # the hashed UID (sha256 hex)
CardReference = Annotated[str, Meta(min_length=1, max_length=64)]
CardMode = Literal["online", "offline", "void"]
CardOutcome = Literal["approved", "declined", "applied", "voided"]
CardRefusal = Literal["", "insufficient_funds", "unknown_card", "wrong_currency", "conflict"]


class CardDebit(Payload, frozen=True, kw_only=True):
    """Device → hub on card_debit_up: a stored-value debit to judge, reconcile or void."""

    # online: the sale waits for the answer; the hub refuses a card holding too little.
    # offline: the kiosk took it without the hub (within its offline limit); the hub applies
    # it whatever the balance and flags an overdraft. void: give back the debit of this
    # reference (its sale was not stored). The reference makes each one idempotent.
    device: str
    reference: CardReference
    card: CardKey
    amount: Positive  # minor units taken from the card
    currency: Annotated[str, Meta(min_length=3, max_length=3)]
    mode: CardMode
    taken_at: str = ""  # ISO 8601: when the kiosk approved an offline debit


class CardDebitAnswer(Payload, frozen=True, kw_only=True):
    """Hub → device on card_debit_answer: what became of a CardDebit, and the card after it."""

    reference: CardReference
    outcome: CardOutcome
    reason: CardRefusal = ""  # why declined
    balance: Amount = 0  # the card's balance after (below zero after an overdraft)
    points: Count = 0  # the card's loyalty points
    flag: Literal["", "overdraft", "wrong_currency"] = ""  # an offline debit the hub flagged


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
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as err:
        raise DecodeError(f"{kind.__name__}: {_newer_version(data) or err}") from err
    except msgspec.DecodeError as err:
        raise DecodeError(f"{kind.__name__}: {err}") from err
    except RecursionError:  # absurdly deep nesting from a hostile or broken sender
        raise DecodeError(f"{kind.__name__}: nested too deeply") from None


class _Version(msgspec.Struct):
    v: int = SCHEMA_VERSION


def _newer_version(data: bytes) -> str | None:
    """'schema version N is newer than mine' when the top level's `v` is why it failed."""
    try:
        v = msgspec.json.decode(data, type=_Version).v
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return f"schema version {v} is newer than mine" if v > SCHEMA_VERSION else None


ALL_PAYLOADS: tuple[type[Payload], ...] = (
    HubState,
    DeviceStatus,
    SaleEnvelope,
    SalesBatch,
    SaleRejection,
    SalesAck,
    JournalEntryPayload,
    JournalBatch,
    JournalAck,
    Telemetry,
    ProductPayload,
    CatalogDelta,
    SnapshotChunk,
    CatalogStatus,
    CatalogRequest,
    Command,
    CommandUpdate,
    DesiredConfig,
    ReportedConfig,
    LogLines,
    UpdateReport,
    HelpCall,
    HelpBoard,
    HelpApproval,
    HelpApprovalAnswer,
    CardDebit,
    CardDebitAnswer,
)

# Shapes inside payloads that are kept verbatim (msgspec.Raw) and checked by the receiver.
DOCUMENT_SHAPES: tuple[type[msgspec.Struct], ...] = (SaleDocument,)
