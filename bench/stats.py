"""Medians, percentiles and latency summaries of timing samples."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

NS_PER_US = 1_000


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sample."""
    return statistics.median(values)


def summary_us(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p90, p99 and max of nanosecond samples, in microseconds."""
    return {
        "n": len(samples_ns),
        "median_us": round(median(samples_ns) / NS_PER_US, 2),
        "p90_us": round(percentile(samples_ns, 90) / NS_PER_US, 2),
        "p99_us": round(percentile(samples_ns, 99) / NS_PER_US, 2),
        "max_us": round(max(samples_ns) / NS_PER_US, 2),
    }


def summary_s(samples_s: Sequence[float]) -> dict[str, float]:
    """Median, p90, min and max of samples in seconds."""
    return {
        "n": len(samples_s),
        "median_s": round(median(samples_s), 4),
        "p90_s": round(percentile(samples_s, 90), 4),
        "min_s": round(min(samples_s), 4),
        "max_s": round(max(samples_s), 4),
    }
