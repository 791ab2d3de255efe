"""The hub's tables: devices, their sales, and how far each device's sales are committed.

The models are unbound (`database = None`): hub code runs every query against the
`Database` it was given (`query.execute(db)`, `db.atomic()`), so nothing global decides
which database a query hits. Timestamps are naive UTC.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
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
    document = TextField()  # the device's JSON document, byte for byte as sent
    received_at = DateTimeField()
    # False: the device stamped it before its clock was known right (no NTP, no RTC yet).
    clock_verified = BooleanField(default=True)

    class Meta:
        indexes = (
            (("device", "sale_id"), True),
            (("device", "seq"), True),
            (("created_at",), False),
        )


class DeviceProgress(HubModel):
    """The highest sequence up to which every sale of a device is committed here."""

    device = CharField(primary_key=True, max_length=128)
    upto_seq = BigIntegerField(default=0)


MODELS: tuple[type[HubModel], ...] = (Device, Sale, DeviceProgress)
