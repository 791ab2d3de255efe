"""Each device's release and update state in a few words, for the dashboard and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from peewee import Database

from hub.releases.models import DeviceUpdate, Rollout, RolloutTarget

IN_PROGRESS = frozenset({"offered", "downloading", "downloaded", "trying"})


@dataclass(frozen=True, slots=True)
class UpdateView:
    """A device's latest update report."""

    job: str
    version: str  # the release being installed
    state: str
    running: str  # the release the device runs ("" when it never said)
    done: int
    total: int
    reason: str
    at: datetime

    @property
    def percent(self) -> int | None:
        """How much of the payload is downloaded, or None when the device did not say."""
        return self.done * 100 // self.total if self.total else None

    @property
    def text(self) -> str:
        """E.g. "2026.12.1 → 2026.12.2 downloading 40 %", or "2026.12.2" once committed."""
        state = self.state.replace("_", " ")
        if self.state == "committed":
            return self.version
        if self.state in IN_PROGRESS:
            progress = f" {self.percent} %" if self.state == "downloading" and self.total else ""
            return f"{self.running or '?'} → {self.version} {state}{progress}"
        return f"{self.running or '?'} ({self.version} {state})"  # rolled back, rejected

    @property
    def tone(self) -> str:
        """The dashboard's colour for it: good, wait or bad."""
        if self.state in ("rolled_back", "rejected"):
            return "bad"
        return "wait" if self.state in IN_PROGRESS else "good"


@dataclass(frozen=True, slots=True)
class TargetView:
    """A device as one rollout's target: the release, the store, the job and its state."""

    rollout: int
    version: str
    store: str
    job: str
    state: str
    reason: str
    updated_at: datetime


def device_updates(db: Database) -> dict[str, UpdateView]:
    """Every device's latest update report, in one query (the fleet page is polled)."""
    return {str(row.device): _view(row) for row in DeviceUpdate.select().execute(db)}


def device_update(db: Database, device: str) -> UpdateView | None:
    """One device's latest update report, or None."""
    row = DeviceUpdate.select().where(DeviceUpdate.device == device).first(db)
    return None if row is None else _view(row)


def rollout_history(db: Database, device: str) -> list[TargetView]:
    """The rollouts that sent the device a release, the newest first."""
    query = (
        RolloutTarget.select(RolloutTarget, Rollout.version, Rollout.store)
        .join(Rollout, on=(Rollout.id == RolloutTarget.rollout))
        .where(RolloutTarget.device == device)
        .order_by(RolloutTarget.id.desc())
        .dicts()
    )
    return [
        TargetView(
            rollout=int(row["rollout"]),
            version=str(row["version"]),
            store=str(row["store"]),
            job=str(row["job"]),
            state=str(row["state"]),
            reason=str(row["reason"]),
            updated_at=row["updated_at"],
        )
        for row in query.execute(db)
    ]


def _view(row: DeviceUpdate) -> UpdateView:
    return UpdateView(
        job=str(row.job),
        version=str(row.version),
        state=str(row.state),
        running=str(row.running),
        done=int(row.done),
        total=int(row.total),
        reason=str(row.reason),
        at=row.at,
    )
