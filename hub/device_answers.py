"""What the hub keeps of the fleet's talk with each device: command jobs, configuration, logs.

`appliance-hub fleet command|config|logs` talk to a device directly and wait a while. A
serving hub hears the same traffic (the commands sent, the states the device reports,
the desired and reported configuration, the collected logs) and records it here, so an
answer that comes after the CLI stopped waiting is kept, and `fleet show` and `fleet jobs`
show it. A command is also held (hub/command_hold.py) until its device answers, so a device
that was offline gets it when it is next born. Every write is idempotent: a redelivered
message, or a retained one reaching every worker, changes nothing already recorded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from peewee import Database, ModelSelect

from appliance.core.clock import Clock, SystemClock
from appliance.errors import DecodeError
from appliance.mqtt.commands import TERMINAL_STATES
from appliance.mqtt.device_logs import MAX_LOG_LINES
from appliance.mqtt.payloads import (
    Command,
    CommandUpdate,
    DesiredConfig,
    LogLines,
    ReportedConfig,
    decode,
    encode,
)
from hub.command_hold import hold, mark_sent_live, release
from hub.ingest import utc_naive, utc_text
from hub.models import CommandJob, Device, DeviceLog

log = logging.getLogger(__name__)

SENT = "SENT"  # the hub's own state, never on the wire: sent, and no answer from the device yet
# States only move forward: two workers may handle a job's updates out of order.
_RANK: dict[str, int] = {
    SENT: 0,
    "QUEUED": 1,
    "IN_PROGRESS": 2,
    **dict.fromkeys(TERMINAL_STATES, 3),
}
MAX_REASON = 1000  # characters of a device's reason kept (the device sends at most 500)
MAX_HISTORY = 20  # states kept per job; a job has at most four unless a device misbehaves
JOBS_KEPT = 200  # per device, the newest by update time
LOGS_KEPT = 20  # collect_logs results per device, each up to MAX_LOG_LINES lines
# The device's reason for a command id it has seen before (appliance/mqtt/commands.py;
# tests/mqtt/test_commands.py holds it to that word). The hub sends held commands again,
# so this answer says the device has the command, not what became of it.
REPLAYED = "replayed"

Config = TypeVar("Config", DesiredConfig, ReportedConfig)
Query = TypeVar("Query", bound="ModelSelect[Any]")


class DeviceAnswers:
    """Records command jobs, configurations and logs; each method is one message's handler.

    Thread-safe like the ingest: each call is one transaction, and PostgreSQL locks the
    row it reads before changing it (SQLite's BEGIN IMMEDIATE locks the file).
    """

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    def command_sent(self, device: str, data: bytes) -> None:
        """A command on a device's down/command topic: a job, SENT and held until answered.

        The dashboard calls it too, before it publishes, so its commands are held even when
        no worker runs at that moment.
        """
        command = decode(data, Command)
        if command.device != device:
            raise DecodeError(f"a command on {device}'s topic names {command.device!r}")
        now = self._now()
        fields: dict[str, Any] = {
            "name": command.name,
            "args": json.dumps(command.args, sort_keys=True),
            "issued_at": command.issued_at,
            "expires_at": command.expires_at,
        }
        with self._db.atomic():
            job = self._job(command.id, device)
            if job is None:
                self._insert_job(command.id, device, SENT, "", **fields)
                hold(self._db, command, data, now=now)
                mark_sent_live(self._db, command)
                return
            history = _history(job.history)
            if not _answered(history):
                hold(self._db, command, data, now=now)  # recorded by the dashboard; held already
                mark_sent_live(self._db, command)
            # The device's answer was recorded first (another worker had it): fill in the rest.
            if not any(entry[0] == SENT for entry in history):
                history.insert(0, [SENT, "", utc_text(now)])
            fields["history"] = json.dumps(history)
            CommandJob.update(fields).where(CommandJob.id == command.id).execute(self._db)

    def command_update(self, device: str, data: bytes) -> None:
        """A job state from a device: kept in the job's history; the state only moves forward."""
        update = decode(data, CommandUpdate)
        if not update.id:
            raise DecodeError(f"a command update from {device} has no id")
        reason = update.reason[:MAX_REASON]
        now = self._now()
        replayed = update.state == "REJECTED" and reason == REPLAYED
        with self._db.atomic():
            release(self._db, update.id)  # the device has it: sending it again is pointless
            job = self._job(update.id, device)
            if job is None:
                # The command itself was not seen (sent while no worker ran, or still queued
                # at another worker): keep the answer; the command fills the job in later.
                # "replayed" tells only that the device has it: the job stays SENT.
                state = SENT if replayed else update.state
                self._insert_job(update.id, device, state, reason, answer=[update.state, reason])
                return
            history = _history(job.history)
            if any(entry[:2] == [update.state, reason] for entry in history):
                return  # a redelivery
            if len(history) >= MAX_HISTORY:
                log.warning("job %s of %s: too many states; %s dropped", job.id, device, update)
                return
            history.append([update.state, reason, utc_text(now)])
            changes: dict[Any, Any] = {CommandJob.history: json.dumps(history)}
            # A held command sent again to a device that had it: its first answer stands.
            if not replayed and _RANK[update.state] > _RANK.get(str(job.state), 0):
                changes.update(
                    {
                        CommandJob.state: update.state,
                        CommandJob.reason: reason,
                        CommandJob.updated_at: now,
                    }
                )
            CommandJob.update(changes).where(CommandJob.id == job.id).execute(self._db)
        if update.state in TERMINAL_STATES:
            log.info("job %s on %s: %s %s", update.id, device, update.state, reason)

    def config_desired(self, device: str, data: bytes) -> None:
        """The retained desired configuration of a device (every worker sees it)."""
        self._config(device, data, DesiredConfig, Device.config_desired)

    def config_reported(self, device: str, data: bytes) -> None:
        """The retained reported configuration of a device."""
        self._config(device, data, ReportedConfig, Device.config_reported)

    def logs(self, device: str, data: bytes) -> None:
        """Log lines a device collected on command; the newest LOGS_KEPT per device are kept."""
        lines = decode(data, LogLines)
        if lines.device != device:
            raise DecodeError(f"log lines on {device}'s topic name {lines.device!r}")
        if len(lines.lines) > MAX_LOG_LINES:
            raise DecodeError(
                f"{len(lines.lines)} log lines from {device}: at most {MAX_LOG_LINES}"
            )
        db = self._db
        with db.atomic():
            if lines.command_id:
                seen = DeviceLog.select().where(
                    (DeviceLog.device == device) & (DeviceLog.command_id == lines.command_id)
                )
                if seen.exists(db):
                    return  # a redelivery
            DeviceLog.insert(
                device=device,
                command_id=lines.command_id,
                source=lines.source,
                lines=json.dumps(lines.lines),
                received_at=self._now(),
            ).execute(db)
            _keep_newest(db, DeviceLog, DeviceLog.device == device, DeviceLog.id, LOGS_KEPT)

    # --- helpers -----------------------------------------------------------------------

    def _now(self) -> datetime:
        return utc_naive(self._clock.now())

    def _job(self, job_id: str, device: str) -> CommandJob | None:
        query = CommandJob.select().where(CommandJob.id == job_id)
        job = _locked(self._db, query).first(self._db)
        if job is not None and job.device != device:
            # Ids are random and a device reads only its own commands: never a coincidence.
            raise DecodeError(f"job {job_id} belongs to {job.device}, not {device}")
        return job  # type: ignore[no-any-return]

    def _insert_job(
        self,
        job_id: str,
        device: str,
        state: str,
        reason: str,
        *,
        answer: list[str] | None = None,
        **fields: Any,
    ) -> None:
        now = self._now()
        first = answer or [state, reason]
        CommandJob.insert(
            id=job_id,
            device=device,
            state=state,
            reason="" if state == SENT else reason,
            updated_at=now,
            history=json.dumps([[*first, utc_text(now)]]),
            **fields,
        ).execute(self._db)
        _keep_newest(
            self._db, CommandJob, CommandJob.device == device, CommandJob.updated_at, JOBS_KEPT
        )

    def _config(self, device: str, data: bytes, kind: type[Config], column: Any) -> None:
        if not data:
            return  # a cleared retained message: keep the last one the hub saw
        config = decode(data, kind)
        db = self._db
        with db.atomic():
            Device.insert(id=device).on_conflict(action="NOTHING").execute(db)
            held = _locked(db, Device.select(column).where(Device.id == device)).scalar(db)
            if held and _order(decode(held.encode("utf-8"), kind)) > _order(config):
                return  # an older one, from a worker that was behind
            Device.update({column: encode(config).decode("utf-8")}).where(
                Device.id == device
            ).execute(db)


def _order(config: DesiredConfig | ReportedConfig) -> int:
    """The version a configuration message is about (a refusal is about the refused one)."""
    if isinstance(config, ReportedConfig):
        return max(config.version, config.rejected_version or 0)
    return config.version


def _locked(db: Database, query: Query) -> Query:
    # SQLite has no row locks; its BEGIN IMMEDIATE already holds the file's write lock.
    return query.for_update() if db.for_update else query


def _keep_newest(db: Database, model: Any, where: Any, order: Any, kept: int) -> None:
    """Delete the rows matching `where` beyond the newest `kept` by `order`."""
    newest = model.select(model._meta.primary_key).where(where).order_by(order.desc()).limit(kept)
    model.delete().where(where & model._meta.primary_key.not_in(newest)).execute(db)


def _answered(history: list[list[str]]) -> bool:
    """True when the device answered the job at all ("replayed" included)."""
    return any(entry and entry[0] != SENT for entry in history)


def _history(text: str | None) -> list[list[str]]:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    return [list(entry) for entry in value] if isinstance(value, list) else []


# --- reading, for the fleet CLI -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobView:
    """A command job as `fleet show` and `fleet jobs` print it."""

    id: str
    device: str
    name: str
    args: dict[str, Any]
    issued_at: str
    expires_at: str
    state: str
    reason: str
    updated_at: str
    history: list[list[str]]

    def delivered_only(self) -> bool:
        """SENT, and the device said it has the command ("replayed"), but not what became of it."""
        return self.state == SENT and _answered(self.history)

    def expired_unanswered(self, now: datetime) -> bool:
        """SENT and past its expiry: the device never answered, and now never will."""
        if self.state != SENT or not self.expires_at or _answered(self.history):
            return False
        try:
            return datetime.fromisoformat(self.expires_at) < now
        except ValueError:
            return False

    def lifecycle(self) -> str:
        """The states the job went through, e.g. SENT > QUEUED > IN_PROGRESS > SUCCEEDED."""
        # A "replayed" answer to a command sent again is no step of the job's own.
        steps = [e for e in self.history if e[:2] != ["REJECTED", REPLAYED]] or self.history
        # In lifecycle order: two workers may have recorded two updates the other way round.
        ordered = sorted(steps, key=lambda entry: _RANK.get(entry[0], 3))
        return " > ".join(entry[0] for entry in ordered)


def jobs(db: Database, device: str | None = None, *, limit: int = 50) -> list[JobView]:
    """The newest jobs (of one device, or all), newest first."""
    query = CommandJob.select().order_by(CommandJob.updated_at.desc(), CommandJob.id.desc())
    if device is not None:
        query = query.where(CommandJob.device == device)
    return [_job_view(row) for row in query.limit(limit).execute(db)]


def _job_view(row: CommandJob) -> JobView:
    try:
        args = json.loads(row.args or "{}")
    except json.JSONDecodeError:
        args = {}
    return JobView(
        id=str(row.id),
        device=str(row.device),
        name=str(row.name),
        args=args if isinstance(args, dict) else {},
        issued_at=str(row.issued_at),
        expires_at=str(row.expires_at),
        state=str(row.state),
        reason=str(row.reason),
        updated_at=utc_text(row.updated_at),
        history=_history(row.history),
    )


@dataclass(frozen=True, slots=True)
class LogsView:
    """The latest log lines a device sent."""

    command_id: str
    source: str
    received_at: str
    lines: list[str]


def latest_logs(db: Database, device: str) -> LogsView | None:
    """The newest collect_logs result of a device, or None."""
    row = (
        DeviceLog.select().where(DeviceLog.device == device).order_by(DeviceLog.id.desc()).first(db)
    )
    if row is None:
        return None
    return LogsView(
        command_id=str(row.command_id),
        source=str(row.source),
        received_at=utc_text(row.received_at),
        lines=json.loads(row.lines),
    )


def configs(db: Database, device: str) -> tuple[DesiredConfig | None, ReportedConfig | None]:
    """The desired and reported configuration of a device, as last seen (None: none yet)."""
    row = (
        Device.select(Device.config_desired, Device.config_reported)
        .where(Device.id == device)
        .tuples()
        .first(db)
    )
    desired, reported = row if row else (None, None)
    return _decoded(desired, DesiredConfig), _decoded(reported, ReportedConfig)


def config_state(desired: DesiredConfig | None, reported: ReportedConfig | None) -> str:
    """In one word whether the device runs the desired configuration."""
    if desired is None:
        return "no desired configuration"
    if reported is None:
        return "pending: no report yet"
    if reported.rejected_version == desired.version:
        return "rejected"
    if reported.version >= desired.version:
        return "in force"
    return "pending"


def _decoded(text: str | None, kind: type[Config]) -> Config | None:
    if not text:
        return None
    try:
        return decode(text.encode("utf-8"), kind)
    except DecodeError:
        return None
