"""Commands held at the hub for a device that was offline: sent again when it is born.

A device connects with a clean session, so the broker keeps nothing for it while it is
away: a command published then reaches the hub workers (they record every command as a
job, hub/device_answers.py) and nobody else. The hub therefore keeps the signed bytes of
every command its device has not answered yet (`held_command`), and a worker that records
the device's birth publishes each unexpired one again, byte for byte. The device drops a
command id it has seen (REJECTED "replayed", which never changes the job, see
device_answers), so a command the device did get before is harmless to send twice.

Every worker hears every birth (statuses are not shared), and a retained birth can come
again: `sent_session` (the highest bd_seq the command was sent in) is claimed with one
conditional UPDATE, so exactly one worker resends a command per device session. A command
is first held with -1, so the first birth after it always sends it again, even a birth
another worker recorded just before this one recorded the command. A command published
while its device is online is marked sent in the device's session at once (the dashboard
after its publish; a worker when the device's birth came before the command was issued),
so the same birth seen again does not send it twice. One published while the device was
online but lost on the way (the broker unreachable) goes out from the periodic pass:
unanswered after RESEND_AFTER and not sent in the device's current session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from peewee import (
    BigIntegerField,
    CharField,
    Database,
    DateTimeField,
    SchemaManager,
    TextField,
)

from appliance.core.clock import Clock, SystemClock
from appliance.mqtt import topics
from appliance.mqtt.payloads import Command, DeviceStatus
from hub.ingest import utc_naive
from hub.models import Device, HubModel

log = logging.getLogger(__name__)

NOT_SENT_AGAIN = -1  # sent_session of a command no birth has sent again yet
SWEEP_EVERY = 300.0  # seconds between deletions of expired held commands
RESEND_EVERY = 10.0  # seconds between passes over online devices' unsent held commands
RESEND_AFTER = timedelta(seconds=30)  # unanswered this long and not sent in this session
# Issue times come from the signer's clock, birth times from a worker's: a command is taken
# as published after a birth only when issued this much later, so a skew cannot lose it.
CLOCK_MARGIN = timedelta(seconds=5)

Publish = Callable[[str, bytes], None]  # (topic, payload), QoS 1, not retained


class HeldCommand(HubModel):
    """A signed command its device has not answered yet, kept until an answer or expiry."""

    job_id = CharField(primary_key=True, max_length=64)  # the command id (command_job.id)
    device = CharField(max_length=128)
    payload = TextField()  # the signed command's JSON, exactly as published
    expires_at = DateTimeField()  # naive UTC
    sent_session = BigIntegerField(default=NOT_SENT_AGAIN)
    held_at = DateTimeField(null=True)  # naive UTC, when the hub first recorded it

    class Meta:
        indexes = ((("device", "expires_at"), False),)


class DeviceBirth(HubModel):
    """When a worker first recorded a device's current birth (a retained one seen again
    does not move it)."""

    device = CharField(primary_key=True, max_length=128)
    bd_seq = BigIntegerField()
    born_at = DateTimeField()  # naive UTC, by the first worker's clock


def create_hold_table(db: Database) -> None:
    """Create `held_command` and `device_birth` (part of migration 9)."""
    for model in (HeldCommand, DeviceBirth):
        SchemaManager(model, database=db).create_all(safe=True)


def expiry(command: Command) -> datetime | None:
    """The command's expiry as naive UTC, or None when it is unreadable or has no offset."""
    try:
        moment = datetime.fromisoformat(command.expires_at)
    except ValueError:
        return None
    return utc_naive(moment) if moment.tzinfo is not None else None


def hold(db: Database, command: Command, payload: bytes, *, now: datetime | None = None) -> None:
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
        held_at=now or utc_naive(datetime.now(UTC)),
    ).on_conflict(action="NOTHING").execute(db)


def mark_sent(db: Database, job_ids: Sequence[str]) -> None:
    """Commands just published: sent in their device's current session, if it is online.

    A birth of that session seen again then does not send them twice; an offline device
    gets them from its next birth.
    """
    for job_id in job_ids:
        row = HeldCommand.select(HeldCommand.device).where(HeldCommand.job_id == job_id).first(db)
        if row is not None:
            _mark(db, job_id, str(row.device))


def mark_sent_live(db: Database, command: Command) -> None:
    """A worker saw `command` on the broker: sent in the device's session when the device
    was born (as a worker first recorded it) before the command was issued, so it was
    subscribed then. Runs in the caller's transaction."""
    try:
        issued = utc_naive(datetime.fromisoformat(command.issued_at))
    except ValueError:
        return
    birth = DeviceBirth.select().where(DeviceBirth.device == command.device).first(db)
    if birth is not None and birth.born_at + CLOCK_MARGIN < issued:
        _mark(db, command.id, command.device, session=int(birth.bd_seq))


def _mark(db: Database, job_id: str, device: str, *, session: int | None = None) -> None:
    """Sent in the device's current session (`session` when given and still current)."""
    online = Device.select(Device.bd_seq).where((Device.id == device) & Device.online)
    current = online.scalar(db)
    if current is None or (session is not None and session != current):
        return
    HeldCommand.update(sent_session=current).where(
        (HeldCommand.job_id == job_id) & (HeldCommand.sent_session < current)
    ).execute(db)


def unsent_jobs(db: Database, device: str) -> set[str]:
    """The held commands of `device` not sent in its current session (not published yet)."""
    current = Device.select(Device.bd_seq).where(Device.id == device).scalar(db)
    query = HeldCommand.select(HeldCommand.job_id).where(
        (HeldCommand.device == device)
        & (HeldCommand.sent_session < (-1 if current is None else current))
    )
    return {str(job_id) for (job_id,) in query.tuples().execute(db)}


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
            self._born(device, status.bd_seq)
            self.resend(device, status.bd_seq)

    def _born(self, device: str, session: int) -> None:
        now = utc_naive(self._clock.now())
        DeviceBirth.insert(device=device, bd_seq=session, born_at=now).on_conflict(
            conflict_target=[DeviceBirth.device],
            update={DeviceBirth.bd_seq: session, DeviceBirth.born_at: now},
            where=DeviceBirth.bd_seq < session,
        ).execute(self._db)

    def resend_unsent(self) -> None:
        """Send held commands of online devices not sent in their current session (the
        publish was lost) once RESEND_AFTER has passed without an answer."""
        now = utc_naive(self._clock.now())
        due = (
            HeldCommand.select(HeldCommand.device, Device.bd_seq)
            .join(Device, on=(HeldCommand.device == Device.id))
            .where(
                Device.online
                & (HeldCommand.sent_session < Device.bd_seq)
                & (HeldCommand.expires_at > now)
                & (HeldCommand.held_at <= now - RESEND_AFTER)
            )
            .distinct()
            .tuples()
        )
        for device, session in list(due.execute(self._db)):
            self.resend(str(device), int(session), held_before=now - RESEND_AFTER)

    def resend(
        self, device: str, session: int, *, held_before: datetime | None = None
    ) -> list[str]:
        """Send every unexpired held command of `device` not yet sent for `session`; their ids."""
        now = utc_naive(self._clock.now())
        db = self._db
        where = (
            (HeldCommand.device == device)
            & (HeldCommand.expires_at > now)
            & (HeldCommand.sent_session < session)
        )
        if held_before is not None:
            where &= HeldCommand.held_at <= held_before
        waiting = (
            HeldCommand.select(HeldCommand.job_id, HeldCommand.payload)
            .where(where)
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
