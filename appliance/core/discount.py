"""Percentage and fixed discounts, and how a cart discount is shared among lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from appliance.core.money import round_half_up
from appliance.core.tax import BASIS_POINTS

DiscountKind = Literal["percent", "fixed"]


@dataclass(frozen=True, slots=True)
class Discount:
    """A reduction: `value` is basis points for "percent", minor units for "fixed"."""

    kind: DiscountKind
    value: int
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("percent", "fixed"):
            raise ValueError(f"unknown discount kind {self.kind!r}")
        if self.value < 0:
            raise ValueError("a discount cannot be negative")
        if self.kind == "percent" and self.value > BASIS_POINTS:
            raise ValueError("a percentage discount cannot exceed 100%")

    @classmethod
    def percent(cls, basis_points: int, reason: str = "") -> Discount:
        """A percentage off, in basis points (1000 = 10%)."""
        return cls("percent", basis_points, reason)

    @classmethod
    def fixed(cls, minor: int, reason: str = "") -> Discount:
        """A fixed amount off, in minor units."""
        return cls("fixed", minor, reason)

    def amount_off(self, base: int) -> int:
        """How much comes off `base` minor units; never more than the base."""
        if base <= 0:
            return 0
        if self.kind == "percent":
            return round_half_up(Fraction(base * self.value, BASIS_POINTS))
        return min(self.value, base)


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights` so the parts add up exactly (largest remainder)."""
    weight_sum = sum(weights)
    if total == 0:
        return [0] * len(weights)
    if weight_sum <= 0:
        raise ValueError(f"cannot share {total} over weights that add up to {weight_sum}")
    if total < 0:
        # Mirror the positive split so a negative total is shared exactly like its opposite.
        return [-part for part in allocate(-total, weights)]
    shares = [Fraction(total * w, weight_sum) for w in weights]
    # Floor, not truncate: every remainder is then in [0, 1) and the leftover in [0, len).
    parts = [math.floor(share) for share in shares]
    leftover = total - sum(parts)
    # Largest remainder first; ties go to the earlier line so results are deterministic.
    by_remainder = sorted(range(len(weights)), key=lambda i: (parts[i] - shares[i], i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts
