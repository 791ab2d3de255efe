"""One measured row of the report: value, target, baseline and verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Target:
    """A limit on the measured value, or on the ratio to the baseline when `on_ratio`."""

    limit: float
    at_most: bool
    on_ratio: bool = False

    def met(self, measured: float | None, ratio: float | None) -> bool:
        """Whether the row's value is within the limit."""
        value = ratio if self.on_ratio else measured
        if value is None or math.isnan(value):
            return False
        return value <= self.limit if self.at_most else value >= self.limit

    def describe(self, unit: str) -> str:
        """The target as the table shows it, e.g. "<= 2 ms" or "ratio >= 0.7"."""
        sign = "<=" if self.at_most else ">="
        if self.on_ratio:
            return f"ratio {sign} {self.limit:g}"
        return f"{sign} {self.limit:g} {unit}"


@dataclass(frozen=True, slots=True)
class Row:
    """A measured value with its unit, optional target, optional baseline and their ratio."""

    benchmark: str
    metric: str
    measured: float | None
    unit: str
    target: Target | None = None
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, benchmark: str, error: str) -> Row:
        """A row standing for a benchmark that crashed."""
        return cls(benchmark, "error", None, "", note=error)

    @property
    def label(self) -> str:
        """The name shown in the table's first column."""
        return f"{self.benchmark} {self.metric}"

    @property
    def status(self) -> str:
        """PASS or FAIL against the target; "info" without one; ERROR when it crashed."""
        if self.measured is None:
            return "ERROR"
        if self.target is None:
            return "info"
        return "PASS" if self.target.met(self.measured, self.ratio) else "FAIL"

    def to_json(self) -> dict[str, Any]:
        """The row as the JSON report stores it."""
        target = None
        if self.target is not None:
            target = {
                "limit": self.target.limit,
                "at_most": self.target.at_most,
                "on_ratio": self.target.on_ratio,
                "text": self.target.describe(self.unit),
            }
        return {
            "benchmark": self.benchmark,
            "metric": self.metric,
            "measured": self.measured,
            "unit": self.unit,
            "target": target,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "status": self.status,
            "note": self.note,
            "details": self.details,
        }
