"""A hub worker's interval work: due at the first chance, then every N seconds, never fatal."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.periodic import PeriodicWork


class SteppedClock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self) -> None:
        self.seconds = 100.0

    def now(self) -> datetime:
        return datetime(2030, 1, 15, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.seconds


def test_work_runs_at_the_first_chance_then_on_its_interval() -> None:
    clock, ran = SteppedClock(), []
    work = PeriodicWork(
        [(1.0, lambda: ran.append("fast")), (10.0, lambda: ran.append("slow"))], clock
    )

    work.run_due()
    assert ran == ["fast", "slow"]
    assert work.seconds_left() == 1.0
    clock.seconds += 0.5
    work.run_due()
    assert ran == ["fast", "slow"]  # nothing due yet
    assert work.seconds_left() == 0.5
    clock.seconds += 0.5
    work.run_due()
    assert ran == ["fast", "slow", "fast"]


def test_a_failing_work_is_logged_and_the_others_still_run() -> None:
    clock, ran = SteppedClock(), []

    def broken() -> None:
        raise RuntimeError("database gone")

    work = PeriodicWork([(1.0, broken), (1.0, lambda: ran.append("after"))], clock)
    work.run_due()
    clock.seconds += 1.0
    work.run_due()
    assert ran == ["after", "after"]


def test_no_work_means_no_deadline() -> None:
    assert PeriodicWork([], SteppedClock()).seconds_left() is None
