"""Commands held at the hub for a device that was offline: sent again when it is born.

A device connects with a clean session, so the broker keeps nothing for it while it is
away: a command published then reaches the hub workers (they record every command as a
job, hub/device_answers.py) and nobody else. The hub therefore keeps the signed bytes of
every command its device has not answered yet (`held_command`), and a worker that records
the device's birth publishes each unexpired one again, byte for byte. The device drops a
command id it has seen (REJECTED "replayed", which never changes the job, see
device_answers), so a command the device did get before is harmless to send twice.

Every worker hears every birth (statuses are not shared), and a retained birth can come
again: `sent_session` (the highest bd_seq the command was sent again for) is claimed with
one conditional UPDATE, so exactly one worker resends a command per device session. A
command is first held with -1, so the first birth after it always sends it again, even a
birth another worker recorded just before this one recorded the command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from peewee import BigIntegerField, CharField, Database, DateTimeField, SchemaManager, TextField

from appliance.core.clock import Clock, SystemClock
from appliance.mqtt import topics
from appliance.mqtt.payloads import Command, DeviceStatus
from hub.ingest import utc_naive
from hub.models import HubModel

log = logging.getLogger(__name__)

NOT_SENT_AGAIN = -1  # sent_session of a command no birth has sent again yet
SWEEP_EVERY = 300.0  # seconds between deletions of expired held commands

Publish = Callable[[str, bytes], None]  # (topic, payload), QoS 1, not retained


class HeldCommand(HubModel):
    """A signed command its device has not answered yet, kept until an answer or expiry."""

    job_id = CharField(primary_key=True, max_length=64)  # the command id (command_job.id)
    device = CharField(max_length=128)
    payload = TextField()  # the signed command's JSON, exactly as published
    expires_at = DateTimeField()  # naive UTC
    sent_session = BigIntegerField(default=NOT_SENT_AGAIN)

    class Meta:
        indexes = ((("device", "expires_at"), False),)


def create_hold_table(db: Database) -> None:
    """Create `held_command` (part of migration 9)."""
    SchemaManager(HeldCommand, database=db).create_all(safe=True)


def expiry(command: Command) -> datetime | None:
    """The command's expiry as naive UTC, or None when it is unreadable or has no offset."""
    try:
        moment = datetime.fromisoformat(command.expires_at)
    except ValueError:
        return None
    return utc_naive(moment) if moment.tzinfo is not None else None


def hold(db: Database, command: Command, payload: bytes) -> None:
    """Keep a command until its device answers it or it expires; a second call changes nothing.

    Runs inside the caller's transaction (the job's). A command whose expiry the device
    would refuse anyway is not held.
    """
    expires_at = expiry(command)
    if expires_at is None:
        return
    HeldCommand.insert(
        job_id=command.id,
        device=command.device,
        payload=payload.decode("utf-8"),
        expires_at=expires_at,
    ).on_conflict(action="NOTHING").execute(db)


def release(db: Database, job_id: str) -> None:
    """The device answered: nothing more to send."""
    HeldCommand.delete().where(HeldCommand.job_id == job_id).execute(db)


def held_jobs(db: Database, device: str) -> set[str]:
    """The ids of a device's commands that still wait at the hub for an answer."""
    query = HeldCommand.select(HeldCommand.job_id).where(HeldCommand.device == device)
    return {str(job_id) for (job_id,) in query.tuples().execute(db)}


class HeldCommands:
    """Sends held commands again on their device's birth; the worker's `after_status` hook.

    Runs on the hub worker thread; `publish` must be thread-safe (HubServer.publish is).
    """

    def __init__(self, db: Database, publish: Publish, *, clock: Clock | None = None) -> None:
        self._db = db
        self._publish = publish
        self._clock = clock or SystemClock()

    def on_status(self, device: str, status: DeviceStatus) -> None:
        """After a current birth or will: on a birth, send the device's held commands."""
        if status.online:
            self.resend(device, status.bd_seq)

    def resend(self, device: str, session: int) -> list[str]:
        """Send every unexpired held command of `device` not yet sent for `session`; their ids."""
        now = utc_naive(self._clock.now())
        db = self._db
        waiting = (
            HeldCommand.select(HeldCommand.job_id, HeldCommand.payload)
            .where(
                (HeldCommand.device == device)
                & (HeldCommand.expires_at > now)
                & (HeldCommand.sent_session < session)
            )
            .order_by(HeldCommand.job_id)  # UUIDv7 ids: in the order they were issued
            .tuples()
        )
        sent: list[str] = []
        for job_id, payload in list(waiting.execute(db)):
            claimed = (
                HeldCommand.update(sent_session=session)
                .where((HeldCommand.job_id == job_id) & (HeldCommand.sent_session < session))
                .execute(db)
            )
            if not claimed:
                continue  # another worker sends it for this session
            self._publish(topics.command(device), payload.encode("utf-8"))
            sent.append(str(job_id))
        if sent:
            log.info("sent %d held command(s) to %s (session %d)", len(sent), device, session)
        return sent

    def sweep(self) -> None:
        """Delete held commands past their expiry (a job list shows them expired)."""
        now = utc_naive(self._clock.now())
        gone = HeldCommand.delete().where(HeldCommand.expires_at <= now).execute(self._db)
        if gone:
            log.info("%d held command(s) expired unanswered", gone)
