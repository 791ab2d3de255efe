"""Update reports from devices: each device's update state, its rollout target, the auto-pause.

Runs on a hub worker thread as the handler of up/update. Every write is idempotent and
only moves forward, because a device sends its report again at every connect and two
workers may handle one device's reports out of order: a report of an older job (update
command ids are UUIDv7, so they sort by issue time) never replaces a newer job's, a job's
state never goes back, and its downloaded bytes only grow.
"""

from __future__ import annotations

import logging
from datetime import datetime

from peewee import Database

from appliance.core.clock import Clock, SystemClock
from appliance.errors import DecodeError
from appliance.mqtt.payloads import UpdateReport, decode
from hub.ingest import utc_naive
from hub.releases.models import SENT, DeviceUpdate, RolloutTarget
from hub.releases.rollout import FINAL_STATES, evaluate, finish_if_done

log = logging.getLogger(__name__)

MAX_REASON = 1000  # characters of a device's reason kept
# How far along a job each state is; the finals share one rank (a job ends once).
RANK: dict[str, int] = {
    SENT: 0,
    "offered": 1,
    "downloading": 2,
    "downloaded": 3,
    "trying": 4,
    **dict.fromkeys(FINAL_STATES, 5),
}


def _later(new_job: str, new_state: str, new_done: int, old: DeviceUpdate) -> bool:
    """Whether a report moves a device's update state forward from the stored one."""
    if new_job != old.job:
        if new_state == "rejected" and RANK.get(str(old.state), 0) < RANK["rejected"]:
            return False  # refused because the stored job is in hand: that one stands
        return new_job > str(old.job)  # UUIDv7 text sorts by issue time
    old_rank, new_rank = RANK.get(str(old.state), 0), RANK[new_state]
    if new_rank != old_rank:
        return new_rank > old_rank
    return new_state == "downloading" and new_done > int(old.done)


class UpdateReports:
    """Stores UpdateReports; the worker's handler for up/update. Thread-safe like the ingest."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    def on_report(self, device: str, data: bytes) -> None:
        """A device's report: DecodeError (malformed, nothing stored) when it names another."""
        report = decode(data, UpdateReport)
        if report.device != device:
            raise DecodeError(f"an update report on {device}'s topic names {report.device!r}")
        if not report.job:
            raise DecodeError(f"an update report from {device} has no job")
        now = utc_naive(self._clock.now())
        db = self._db
        with db.atomic():
            self._device_state(report, now)
            rollout = self._target(report, now)
        if rollout is not None and report.state in FINAL_STATES:
            # After the commit: the counts the rule reads include this report.
            with db.atomic():
                if report.state == "rolled_back":
                    evaluate(db, rollout)
                finish_if_done(db, rollout)

    def _device_state(self, report: UpdateReport, now: datetime) -> None:
        db = self._db
        fields = {
            DeviceUpdate.job: report.job,
            DeviceUpdate.version: report.version,
            DeviceUpdate.state: report.state,
            DeviceUpdate.done: report.done,
            DeviceUpdate.total: report.total,
            DeviceUpdate.reason: report.reason[:MAX_REASON],
            DeviceUpdate.at: now,
        }
        if report.running:  # a report that does not say keeps what the last one said
            fields[DeviceUpdate.running] = report.running
        query = DeviceUpdate.select().where(DeviceUpdate.device == report.device)
        old = (query.for_update() if db.for_update else query).first(db)
        if old is None:
            inserted = (
                DeviceUpdate.insert({DeviceUpdate.device: report.device, **fields})
                .on_conflict(action="NOTHING")
                .as_rowcount()
                .execute(db)
            )
            if inserted:
                return
            # Another worker inserted it first: compare with what it stored.
            old = (query.for_update() if db.for_update else query).first(db)
        if _later(report.job, report.state, report.done, old):
            DeviceUpdate.update(fields).where(DeviceUpdate.device == report.device).execute(db)
        elif report.running and report.job == old.job and report.running != old.running:
            DeviceUpdate.update(running=report.running).where(
                DeviceUpdate.device == report.device
            ).execute(db)

    def _target(self, report: UpdateReport, now: datetime) -> int | None:
        """Move the job's rollout target forward; its rollout when the state changed."""
        db = self._db
        query = RolloutTarget.select().where(
            (RolloutTarget.job == report.job) & (RolloutTarget.device == report.device)
        )
        target = (query.for_update() if db.for_update else query).first(db)
        if target is None:
            return None  # an update sent by hand (`fleet command ... update`), not a rollout's
        if RANK[report.state] <= RANK.get(str(target.state), 0):
            return None
        RolloutTarget.update(
            state=report.state, reason=report.reason[:MAX_REASON], updated_at=now
        ).where(RolloutTarget.id == target.id).execute(db)
        log.info(
            "rollout %s: %s %s %s%s",
            target.rollout,
            report.device,
            report.version,
            report.state,
            f" ({report.reason})" if report.reason else "",
        )
        return int(target.rollout)
