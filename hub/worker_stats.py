"""Hub workers' counters in the database, so `appliance-hub status` can show every worker's.

Each worker writes its counters (received, malformed, unhandled, failures, ... and the
malformed messages per device) every STATS_EVERY seconds and when it stops. A worker not
heard of for STALE_AFTER seconds is reported silent: killed, or cut off from the database.
Rows of workers gone for KEEP_DAYS are deleted by the next save of any worker.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from peewee import Database

from hub.ingest import utc_naive, utc_text
from hub.models import WorkerStats

STATS_EVERY = 10.0  # seconds between two saves of a worker's counters
STALE_AFTER = 3 * STATS_EVERY
KEEP_DAYS = 7
STOPPED = "stopped"  # a flag in the counters: 1 once the worker stopped cleanly
PER_DEVICE = ("malformed_by_device", "unhandled_by_device")  # {device: count} maps


def save_stats(
    db: Database, worker_id: str, started_at: datetime, counters: Mapping[str, Any], now: datetime
) -> None:
    """Write one worker's counters (one row per worker id), and forget long-gone workers."""
    started, seen = utc_naive(started_at), utc_naive(now)
    text = json.dumps(dict(counters), sort_keys=True)
    with db.atomic():
        WorkerStats.insert(
            worker_id=worker_id, started_at=started, seen_at=seen, counters=text
        ).on_conflict(
            conflict_target=[WorkerStats.worker_id],
            update={
                WorkerStats.started_at: started,
                WorkerStats.seen_at: seen,
                WorkerStats.counters: text,
            },
        ).execute(db)
        WorkerStats.delete().where(WorkerStats.seen_at < seen - timedelta(days=KEEP_DAYS)).execute(
            db
        )


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker's row as `appliance-hub status` shows it."""

    worker_id: str
    started_at: str
    seen_at: str
    state: str  # alive, stopped or silent
    counters: dict[str, int]
    per_device: dict[str, dict[str, int]] = field(default_factory=dict)


def workers(db: Database, now: datetime) -> list[WorkerView]:
    """Every worker heard of in the last KEEP_DAYS, most recently seen first."""
    query = WorkerStats.select().order_by(WorkerStats.seen_at.desc(), WorkerStats.worker_id)
    return [_view(row, utc_naive(now)) for row in query.execute(db)]


def totals(views: Iterable[WorkerView]) -> WorkerView:
    """The sum of the workers' counters and per-device maps (as a pseudo-worker "all")."""
    counters: Counter[str] = Counter()
    per_device: dict[str, Counter[str]] = {name: Counter() for name in PER_DEVICE}
    for view in views:
        counters.update(view.counters)
        for name, counts in view.per_device.items():
            per_device.setdefault(name, Counter()).update(counts)
    return WorkerView(
        worker_id="all",
        started_at="",
        seen_at="",
        state="",
        counters=dict(counters),
        per_device={name: dict(counts) for name, counts in per_device.items()},
    )


def malformed_from(db: Database, device: str, now: datetime) -> int:
    """Messages of `device` the hub's workers counted as malformed (over KEEP_DAYS of workers)."""
    return totals(workers(db, now)).per_device["malformed_by_device"].get(device, 0)


def _view(row: WorkerStats, now: datetime) -> WorkerView:
    try:
        data = json.loads(row.counters or "{}")
    except json.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    stopped = bool(data.get(STOPPED))
    counters = {
        k: v for k, v in data.items() if k != STOPPED and isinstance(v, int) and k not in PER_DEVICE
    }
    per_device = {
        name: {d: n for d, n in data[name].items() if isinstance(n, int)}
        for name in PER_DEVICE
        if isinstance(data.get(name), dict)
    }
    seen = row.seen_at if isinstance(row.seen_at, datetime) else datetime.fromisoformat(row.seen_at)
    if stopped:
        state = "stopped"
    elif now - seen <= timedelta(seconds=STALE_AFTER):
        state = "alive"
    else:
        state = "silent"
    return WorkerView(
        worker_id=str(row.worker_id),
        started_at=utc_text(row.started_at),
        seen_at=utc_text(row.seen_at),
        state=state,
        counters=counters,
        per_device=per_device,
    )
