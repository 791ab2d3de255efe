"""The hub's tables: devices, their sales and fiscal journals, and what the journals hold.

The models are unbound (`database = None`): hub code runs every query against the
`Database` it was given (`query.execute(db)`, `db.atomic()`), so nothing global decides
which database a query hits. Timestamps are naive UTC.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    DateTimeField,
    Model,
    TextField,
)


class HubModel(Model):
    """Base of the hub's models: no database of its own, snake_case table names."""

    class Meta:
        database = None
        legacy_table_names = False


class Device(HubModel):
    """An appliance the hub has heard of; `id` is the CN of its certificate."""

    id = CharField(primary_key=True, max_length=128)
    last_seen = DateTimeField(null=True)
    online = BooleanField(default=False)
    bd_seq = BigIntegerField(default=-1)  # session counter of the last birth (-1: none yet)
    firmware = CharField(max_length=64, default="")
    telemetry = TextField(null=True)  # the last Telemetry payload as received (JSON)
    config_desired = TextField(null=True)  # the last DesiredConfig seen on the broker (JSON)
    config_reported = TextField(null=True)  # the last ReportedConfig from the device (JSON)


class Sale(HubModel):
    """One committed document (sale, refund or void) of one device, stored once."""

    id = AutoField()
    device = CharField(max_length=128)
    sale_id = CharField(max_length=64)
    seq = BigIntegerField()
    kind = CharField(max_length=16)
    created_at = DateTimeField()
    total = BigIntegerField()  # minor units of `currency`
    currency = CharField(max_length=3)
    document = TextField()  # the device's JSON as sent, its receipt token hashed
    received_at = DateTimeField()
    # False: the device stamped it before its clock was known right (no NTP, no RTC yet).
    clock_verified = BooleanField(default=True)
    # The device's store when the sale arrived (None: the device was in no store); filled
    # for older rows by migration 6 from the assignment at that time.
    store = CharField(max_length=64, null=True)

    class Meta:
        indexes = (
            (("device", "sale_id"), True),
            (("device", "seq"), True),
            (("created_at",), False),
            (("store", "created_at"), False),
        )


class DeviceProgress(HubModel):
    """The highest sequence up to which every sale of a device is committed here."""

    device = CharField(primary_key=True, max_length=128)
    upto_seq = BigIntegerField(default=0)
    # Sales of the device kept as rejections; 0 lets the ingest skip looking them up.
    rejected = BigIntegerField(default=0)


MODELS: tuple[type[HubModel], ...] = (Device, Sale, DeviceProgress)


class JournalEntry(HubModel):
    """One fiscal journal entry of one device, byte for byte as the device chained it."""

    id = AutoField()
    device = CharField(max_length=128)
    number = BigIntegerField()
    kind = CharField(max_length=32)
    at = CharField(max_length=64)  # the device's UTC ISO text, as hashed
    body = BlobField()  # the event's canonical JSON, exactly the hashed bytes
    prev_hash = CharField(max_length=64)
    hash = CharField(max_length=64)
    received_at = DateTimeField()

    class Meta:
        indexes = ((("device", "number"), True), (("device", "kind"), False))


class JournalState(HubModel):
    """How far a device's journal is committed and proven, and its first break if any."""

    device = CharField(primary_key=True, max_length=128)
    upto = BigIntegerField(default=0)  # every entry up to here is stored and was checked
    broken_at = BigIntegerField(null=True)  # the first entry the chain does not prove
    break_reason = TextField(default="")
    broken_seen_at = DateTimeField(null=True)


class TillReport(HubModel):
    """An X or Z report taken from a device's journal; the body is the report verbatim."""

    id = AutoField()
    device = CharField(max_length=128)
    store = CharField(max_length=128, null=True)  # the device's store when it arrived
    kind = CharField(max_length=1)  # "x" or "z"
    number = BigIntegerField()  # z: gapless per device; x: the report's own counter
    journal_number = BigIntegerField()
    made_at = DateTimeField()
    currency = CharField(max_length=3, default="")
    sales_gross = BigIntegerField(null=True)  # minor units of `currency`, as the report says
    refunds_total = BigIntegerField(null=True)
    voids_total = BigIntegerField(null=True)
    expected_cash = BigIntegerField(null=True)
    counted_cash = BigIntegerField(null=True)
    difference = BigIntegerField(null=True)
    grand_total = BigIntegerField(null=True)
    body = TextField()

    class Meta:
        indexes = (
            (("device", "journal_number"), True),
            (("device", "kind", "number"), False),
            (("store", "made_at"), False),
        )


class DrawerOpening(HubModel):
    """A cash drawer opening from a device's journal, with its cause."""

    id = AutoField()
    device = CharField(max_length=128)
    journal_number = BigIntegerField()
    opened_at = DateTimeField()
    reason = CharField(max_length=32, default="")  # sale, no_sale, remote, by_hand, ...
    staff = CharField(max_length=128, default="")
    reference = CharField(max_length=128, default="")
    unexplained = BooleanField(default=False)  # the device flagged it: no sale, no reason given
    body = TextField()

    class Meta:
        indexes = ((("device", "journal_number"), True), (("device", "opened_at"), False))


class ShiftEvent(HubModel):
    """A shift opened or closed, or cash put in or taken out, from a device's journal."""

    id = AutoField()
    device = CharField(max_length=128)
    journal_number = BigIntegerField()
    kind = CharField(max_length=32)  # shift_open, cash_in, cash_out, shift_close
    at = DateTimeField()
    shift = CharField(max_length=64, default="")
    staff = CharField(max_length=128, default="")
    amount = BigIntegerField(null=True)  # moved in or out, the float, or counted at close
    body = TextField()

    class Meta:
        indexes = ((("device", "journal_number"), True),)


# Created by migration 4; version 1 creates only MODELS.
JOURNAL_MODELS: tuple[type[HubModel], ...] = (
    JournalEntry,
    JournalState,
    TillReport,
    DrawerOpening,
    ShiftEvent,
)


class SaleRejection(HubModel):
    """A sale the hub holds apart, never counted: an unreadable document or a conflict.

    Kept byte for byte, so nothing a device sent is ever lost; the device is told in the
    sales acknowledgement and quarantines its copy.
    """

    id = AutoField()
    device = CharField(max_length=128)
    seq = BigIntegerField()
    sale_id = CharField(max_length=64)
    code = CharField(max_length=16)  # invalid, conflict
    reason = TextField()
    document = BlobField()  # the document as sent
    received_at = DateTimeField()

    class Meta:
        indexes = ((("device", "seq", "sale_id"), True),)


class CommandJob(HubModel):
    """A fleet command as the hub saw it sent, and the states its device reported since."""

    id = CharField(primary_key=True, max_length=64)  # the command id
    device = CharField(max_length=128, index=True)
    name = CharField(max_length=32, default="")
    args = TextField(default="{}")  # JSON
    issued_at = CharField(max_length=64, default="")  # the command's own ISO text
    expires_at = CharField(max_length=64, default="")
    state = CharField(max_length=16)
    reason = TextField(default="")
    updated_at = DateTimeField()
    history = TextField(default="[]")  # JSON list of [state, reason, received at]


class DeviceLog(HubModel):
    """Log lines a device sent for a collect_logs command."""

    id = AutoField()
    device = CharField(max_length=128)
    command_id = CharField(max_length=64)
    source = CharField(max_length=16)
    lines = TextField()  # JSON list of strings, oldest first
    received_at = DateTimeField()

    class Meta:
        indexes = ((("device", "received_at"), False),)


class WorkerStats(HubModel):
    """One hub worker's counters, written on an interval so `appliance-hub status` sees them."""

    worker_id = CharField(primary_key=True, max_length=128)
    started_at = DateTimeField()
    seen_at = DateTimeField()
    counters = TextField(default="{}")  # JSON {name: count}


class PublishedStock(HubModel):
    """A stock level the hub sent for a product of a store, in force from catalog `version`."""

    id = AutoField()
    store = CharField(max_length=64)
    sku = CharField(max_length=64)
    version = BigIntegerField()
    level = BigIntegerField()

    class Meta:
        indexes = ((("store", "sku", "version"), True), (("store", "version"), False))


# Created by migration 5, with Device.config_desired, Device.config_reported and
# DeviceProgress.rejected.
PROTOCOL_MODELS: tuple[type[HubModel], ...] = (
    SaleRejection,
    CommandJob,
    DeviceLog,
    WorkerStats,
    PublishedStock,
)
