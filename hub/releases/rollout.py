"""Staged rollouts: a release offered to a growing share of a store's devices, paused by itself.

The devices of a store are put in one order per release, sha256(version + device): the
same devices come first whenever the rollout grows, and a different release starts with
different ones, so no kiosk is always the guinea pig. A rollout at p % targets the first
ceil(p × n / 100) devices of that order, n the devices of the store, skipping those
already on the release; raising p adds the next ones, and a device is a target once
(UNIQUE(rollout, device)), so it is never sent the release twice by one rollout.

A target whose device says nothing before its update command expires (offline all that
time: the broker and the hub drop the command then) is marked expired by the serve
workers' periodic sweep, so a rollout at 100 % still ends.

Auto-pause: when a target rolls back and rolled_back / (committed + rolled_back) exceeds
the rollout's max_rollback_share with at least min_finished devices finished (or at all,
while fewer than min_finished are targeted), the rollout pauses with the reason. A paused
rollout adds no device until `resume`; the devices already sent the command go on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database, fn

from appliance.errors import ApplianceError
from appliance.mqtt.payloads import Command, encode
from hub.command_hold import mark_sent
from hub.device_answers import DeviceAnswers
from hub.ingest import utc_naive
from hub.models import Device
from hub.releases.errors import RolloutError
from hub.releases.issuing import UPDATE_EXPIRY, Publish, update_command
from hub.releases.models import (
    DONE,
    EXPIRED,
    OPEN_STATES,
    PAUSED,
    RUNNING,
    SENT,
    DeviceUpdate,
    Rollout,
    RolloutTarget,
)
from hub.releases.store import ReleaseView, release
from hub.store_locks import lock_store
from hub.stores import devices_of

log = logging.getLogger(__name__)

MAX_ROLLBACK_SHARE = 0.2
MIN_FINISHED = 3
FINAL_STATES = frozenset({"committed", "rolled_back", "rejected", EXPIRED})


@dataclass(frozen=True, slots=True)
class Signer:
    """What issuing update commands takes: the fleet key, the bundle server, a publisher."""

    key: Ed25519PrivateKey
    bundle_base_url: str  # e.g. https://hub.example:8443
    publish: Publish | None = None  # None: held only, the serve workers send them


@dataclass(frozen=True, slots=True)
class RolloutView:
    """A rollout and how its targets stand."""

    id: int
    version: str
    store: str
    percent: int
    max_rollback_share: float
    min_finished: int
    state: str
    pause_reason: str
    created_at: datetime
    store_devices: int
    counts: dict[str, int] = field(default_factory=dict)  # target state -> devices

    @property
    def targeted(self) -> int:
        """Devices sent the release by this rollout."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class Grown:
    """What `start` or `resume` did to one rollout."""

    rollout: RolloutView
    added: tuple[Command, ...]  # the update commands issued now, one per new device
    published: bool  # False: held only (no publisher, or it failed: `problem` says why)
    problem: str = ""


def device_order(version: str, devices: Sequence[str]) -> list[str]:
    """The store's devices in the release's own order: sha256(version + device)."""
    return sorted(devices, key=lambda d: (hashlib.sha256((version + d).encode()).digest(), d))


def share(percent: int, devices: int) -> int:
    """How many of `devices` make `percent` %, rounded up (1 % of 10 is one device)."""
    return -(-percent * devices // 100)


def pause_reason(counts: dict[str, int], max_share: float, min_finished: int) -> str:
    """Why a rollout with these target counts must pause, or "" when it may go on."""
    rolled = counts.get("rolled_back", 0)
    if not rolled:
        return ""
    finished = rolled + counts.get("committed", 0)
    targeted = sum(counts.values())
    if targeted < min_finished:
        # Too few targets ever to judge a share: one rollback among them is enough.
        return f"{rolled} of {targeted} targeted device(s) rolled back"
    if finished >= min_finished and rolled / finished > max_share:
        return (
            f"{rolled} of {finished} finished device(s) rolled back"
            f" ({rolled / finished:.0%}, more than {max_share:.0%})"
        )
    return ""


def start_rollout(
    db: Database,
    version: str,
    store: str,
    percent: int,
    signer: Signer,
    *,
    max_rollback_share: float | None = None,
    min_finished: int | None = None,
    now: datetime | None = None,
) -> Grown:
    """Start a rollout of `version` to `percent` % of `store`, or raise the running one's."""
    found = release(db, version)
    if found is None:
        raise RolloutError(f"no release {version} here (appliance-hub release add)")
    if not 1 <= percent <= 100:
        raise RolloutError(f"the percent must be 1 to 100, not {percent}")
    if not devices_of(db, store):
        raise RolloutError(f"store {store!r} has no devices (appliance-hub fleet assign)")
    moment = utc_naive(now or datetime.now(UTC))
    with db.atomic():
        # Two admins starting the same rollout at once: the second waits here and then
        # finds the first's, instead of making a second rollout to the same devices.
        lock_store(db, store)
        rollout = (
            Rollout.select()
            .where(
                (Rollout.version == version)
                & (Rollout.store == store)
                & Rollout.state.in_([*OPEN_STATES, DONE])
            )
            .order_by(Rollout.id.desc())
            .first(db)
        )
        if rollout is None:
            rollout_id = Rollout.insert(
                version=version,
                store=store,
                percent=percent,
                max_rollback_share=(
                    MAX_ROLLBACK_SHARE if max_rollback_share is None else max_rollback_share
                ),
                min_finished=MIN_FINISHED if min_finished is None else min_finished,
                state=RUNNING,
                created_at=moment,
            ).execute(db)
            log.info("rollout %s of %s to store %s at %d %%", rollout_id, version, store, percent)
        else:
            rollout_id = int(rollout.id)
            changes: dict[object, object] = {Rollout.percent: max(percent, int(rollout.percent))}
            if max_rollback_share is not None:
                changes[Rollout.max_rollback_share] = max_rollback_share
            if min_finished is not None:
                changes[Rollout.min_finished] = min_finished
            Rollout.update(changes).where(Rollout.id == rollout_id).execute(db)
    return _grow(db, int(rollout_id), found, signer, moment)


def resume_rollouts(
    db: Database,
    version: str,
    signer: Signer,
    *,
    store: str | None = None,
    max_rollback_share: float | None = None,
    now: datetime | None = None,
) -> list[Grown]:
    """Resume the paused rollouts of `version` (of one store) and add devices up to their share."""
    found = release(db, version)
    if found is None:
        raise RolloutError(f"no release {version} here")
    paused = _selected(db, version, store, (PAUSED,))
    if not paused:
        raise RolloutError(f"no paused rollout of {version}{_in(store)}")
    moment = utc_naive(now or datetime.now(UTC))
    grown = []
    for rollout in paused:
        changes: dict[object, object] = {Rollout.state: RUNNING, Rollout.pause_reason: ""}
        if max_rollback_share is not None:
            changes[Rollout.max_rollback_share] = max_rollback_share
        Rollout.update(changes).where(Rollout.id == rollout.id).execute(db)
        log.info("rollout %s of %s to store %s resumed", rollout.id, version, rollout.store)
        grown.append(_grow(db, int(rollout.id), found, signer, moment))
    return grown


def pause_rollouts(
    db: Database, version: str, reason: str, *, store: str | None = None
) -> list[RolloutView]:
    """Pause the running rollouts of `version` (of one store): no device is added until resumed."""
    running = _selected(db, version, store, (RUNNING, DONE))
    if not running:
        raise RolloutError(f"no running rollout of {version}{_in(store)}")
    for rollout in running:
        Rollout.update(state=PAUSED, pause_reason=reason).where(Rollout.id == rollout.id).execute(
            db
        )
        log.warning("rollout %s of %s paused: %s", rollout.id, version, reason)
    ids = {int(r.id) for r in running}
    return [view for view in rollouts(db, version) if view.id in ids]


def rollouts(db: Database, version: str | None = None) -> list[RolloutView]:
    """Every rollout (of one release), the newest first, with its targets' counts."""
    query = Rollout.select().order_by(Rollout.id.desc())
    if version is not None:
        query = query.where(Rollout.version == version)
    return [_view(db, row) for row in query.execute(db)]


def evaluate(db: Database, rollout_id: int) -> str:
    """Pause the rollout when its rollbacks pass its threshold; returns the reason ("": not)."""
    row = Rollout.select().where(Rollout.id == rollout_id).first(db)
    if row is None or row.state != RUNNING:
        return ""
    reason = pause_reason(_counts(db, rollout_id), row.max_rollback_share, row.min_finished)
    if not reason:
        return ""
    paused = (
        Rollout.update(state=PAUSED, pause_reason=reason)
        .where((Rollout.id == rollout_id) & (Rollout.state == RUNNING))
        .execute(db)
    )
    if paused:
        log.warning("rollout %s of %s paused by itself: %s", rollout_id, row.version, reason)
    return reason


def finish_if_done(db: Database, rollout_id: int) -> bool:
    """Mark a running rollout at 100 % done once every target is final; True if it was."""
    row = Rollout.select().where(Rollout.id == rollout_id).first(db)
    if row is None or row.state != RUNNING or int(row.percent) < 100:
        return False
    counts = _counts(db, rollout_id)
    if any(state not in FINAL_STATES for state in counts):
        return False
    Rollout.update(state=DONE).where(
        (Rollout.id == rollout_id) & (Rollout.state == RUNNING)
    ).execute(db)
    log.info("rollout %s of %s done: %s", rollout_id, row.version, counts)
    return True


def expire_silent_targets(
    db: Database, now: datetime, *, expiry: timedelta = UPDATE_EXPIRY
) -> list[int]:
    """Mark targets sent `expiry` ago with no word from their device expired; their rollouts.

    Only "sent" ones: a device that answered has the job in hand, and reports its end.
    """
    cutoff = utc_naive(now) - expiry
    silent = (RolloutTarget.state == SENT) & (RolloutTarget.updated_at <= cutoff)
    with db.atomic():
        rollout_ids = sorted(
            {
                int(r)
                for (r,) in RolloutTarget.select(RolloutTarget.rollout)
                .where(silent)
                .tuples()
                .execute(db)
            }
        )
        if not rollout_ids:
            return []
        expired = (
            RolloutTarget.update(
                state=EXPIRED,
                reason=f"no word from the device in {expiry.days} days: the command expired",
                updated_at=utc_naive(now),
            )
            .where(silent)
            .execute(db)
        )
    log.warning("%d rollout target(s) expired unanswered, in rollout(s) %s", expired, rollout_ids)
    for rollout_id in rollout_ids:
        with db.atomic():
            finish_if_done(db, rollout_id)
    return rollout_ids


# --- helpers ---------------------------------------------------------------------------


def _grow(
    db: Database, rollout_id: int, found: ReleaseView, signer: Signer, now: datetime
) -> Grown:
    """Issue the update command to the devices the rollout's share now takes in."""
    answers = DeviceAnswers(db)
    added: list[Command] = []
    with db.atomic():
        query = Rollout.select().where(Rollout.id == rollout_id)
        rollout = (query.for_update() if db.for_update else query).first(db)
        if rollout.state == PAUSED:
            return Grown(_view(db, rollout), (), published=False, problem="paused")
        devices = devices_of(db, str(rollout.store))
        wanted = share(int(rollout.percent), len(devices))
        targets = {
            str(d)
            for (d,) in RolloutTarget.select(RolloutTarget.device)
            .where(RolloutTarget.rollout == rollout_id)
            .tuples()
            .execute(db)
        }
        on_version = _on_version(db, found.version)
        count = len(targets)
        for device in device_order(found.version, devices):
            if count >= wanted:
                break
            if device in targets or device in on_version:
                continue
            command = update_command(signer.key, device, found, signer.bundle_base_url)
            inserted = (
                RolloutTarget.insert(
                    rollout=rollout_id, device=device, job=command.id, state=SENT, updated_at=now
                )
                .on_conflict(action="NOTHING")
                .as_rowcount()
                .execute(db)
            )
            count += 1
            if not inserted:
                continue  # another `start` took it in meanwhile
            answers.command_sent(device, encode(command))  # a job, held until answered
            added.append(command)
        if added and rollout.state == DONE:
            Rollout.update(state=RUNNING).where(Rollout.id == rollout_id).execute(db)
    view = _view(db, Rollout.select().where(Rollout.id == rollout_id).first(db))
    if added:
        log.info("rollout %s of %s: %d device(s) added", rollout_id, found.version, len(added))
    if not added or signer.publish is None:
        return Grown(view, tuple(added), published=False)
    try:
        signer.publish(added)
    except ApplianceError as err:
        log.warning("update commands not published (held at the hub): %s", err)
        return Grown(view, tuple(added), published=False, problem=str(err))
    # Sent in each online device's session: its birth seen again does not send it twice.
    mark_sent(db, [command.id for command in added])
    return Grown(view, tuple(added), published=True)


def _on_version(db: Database, version: str) -> set[str]:
    """Devices that run `version` already, as their update reports or firmware say."""
    reported = DeviceUpdate.select(DeviceUpdate.device).where(
        (DeviceUpdate.running == version)
        | ((DeviceUpdate.version == version) & (DeviceUpdate.state == "committed"))
    )
    firmware = Device.select(Device.id).where(Device.firmware == version)
    return {str(d) for (d,) in reported.tuples().execute(db)} | {
        str(d) for (d,) in firmware.tuples().execute(db)
    }


def _counts(db: Database, rollout_id: int) -> dict[str, int]:
    query = (
        RolloutTarget.select(RolloutTarget.state, fn.COUNT(RolloutTarget.id))
        .where(RolloutTarget.rollout == rollout_id)
        .group_by(RolloutTarget.state)
        .tuples()
    )
    return {str(state): int(n) for state, n in query.execute(db)}


def _view(db: Database, row: Rollout) -> RolloutView:
    return RolloutView(
        id=int(row.id),
        version=str(row.version),
        store=str(row.store),
        percent=int(row.percent),
        max_rollback_share=float(row.max_rollback_share),
        min_finished=int(row.min_finished),
        state=str(row.state),
        pause_reason=str(row.pause_reason),
        created_at=row.created_at,
        store_devices=len(devices_of(db, str(row.store))),
        counts=_counts(db, int(row.id)),
    )


def _selected(
    db: Database, version: str, store: str | None, states: Sequence[str]
) -> list[Rollout]:
    query = Rollout.select().where((Rollout.version == version) & Rollout.state.in_(states))
    if store is not None:
        query = query.where(Rollout.store == store)
    return list(query.order_by(Rollout.id).execute(db))


def _in(store: str | None) -> str:
    return f" in store {store}" if store else ""
