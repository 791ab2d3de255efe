"""The hub's release tables: releases, rollouts and their targets, each device's update state."""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
    CharField,
    Database,
    DateTimeField,
    FloatField,
    IntegerField,
    SchemaManager,
    TextField,
)

from hub.models import HubModel

# Rollout states.
RUNNING = "running"
PAUSED = "paused"
DONE = "done"
CANCELLED = "cancelled"
OPEN_STATES = (RUNNING, PAUSED)  # a rollout that may still add devices
# A rollout target's state before its device says anything: the command went out.
SENT = "sent"
# ...and when its device said nothing before the command expired (it never got the command:
# offline all that time). Final: that rollout does not send it again; a new one may.
EXPIRED = "expired"


class Release(HubModel):
    """A release the hub serves: its signed manifest and where its payload lies."""

    version = CharField(primary_key=True, max_length=64)
    manifest = TextField()  # manifest.json, exactly the signed bytes (UTF-8)
    signature = CharField(max_length=128)  # standard base64 of manifest.sig
    payload_path = TextField()  # payload.bin, copied out of the bundle
    payload_size = BigIntegerField()
    payload_sha256 = CharField(max_length=64)
    added_at = DateTimeField()  # naive UTC


class Rollout(HubModel):
    """A release offered to a share of one store's devices, paused when too many roll back."""

    id = AutoField()
    version = CharField(max_length=64)
    store = CharField(max_length=64)
    percent = IntegerField()  # of the store's devices, 1..100
    max_rollback_share = FloatField(default=0.2)
    min_finished = IntegerField(default=3)
    state = CharField(max_length=16, default=RUNNING)
    pause_reason = TextField(default="")
    created_at = DateTimeField()  # naive UTC

    class Meta:
        indexes = ((("version", "store"), False),)


class RolloutTarget(HubModel):
    """One device of a rollout: its update command and where that job stands."""

    id = AutoField()
    rollout = IntegerField()
    device = CharField(max_length=128)
    job = CharField(max_length=64, unique=True)  # the update command's id
    state = CharField(max_length=16, default=SENT)  # SENT, EXPIRED or an UpdateState
    reason = TextField(default="")
    updated_at = DateTimeField()  # naive UTC

    class Meta:
        # A device gets a rollout's command once, whatever the percent grows to.
        indexes = ((("rollout", "device"), True),)


class DeviceUpdate(HubModel):
    """A device's latest update report: the job, the release, its state and progress."""

    device = CharField(primary_key=True, max_length=128)
    job = CharField(max_length=64)
    version = CharField(max_length=64)
    state = CharField(max_length=16)
    running = CharField(max_length=64, default="")
    done = BigIntegerField(default=0)
    total = BigIntegerField(default=0)
    reason = TextField(default="")
    at = DateTimeField()  # naive UTC, when the hub received it


RELEASE_MODELS: tuple[type[HubModel], ...] = (Release, Rollout, RolloutTarget, DeviceUpdate)


def create_release_tables(db: Database) -> None:
    """Migration 10: releases, rollouts, their targets and each device's update state."""
    for model in RELEASE_MODELS:
        SchemaManager(model, database=db).create_all(safe=True)
