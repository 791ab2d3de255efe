"""The checkout scale as the domain sees it: what it answers when asked for a weight.

A weighing answer is one of: a stable weight in grams, motion (no stable weight yet),
underload (below zero), overload (over capacity) or a fault. Only a stable weight may be
sold: legal-for-trade scales give no weight while the platter moves, and the price is
computed from the stable weight in whole grams (appliance.core.cart.price_for_weight).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from appliance.core.devices import Device
from appliance.errors import DeviceError

# How long a checkout waits for a moving platter to settle before it gives up and says so;
# a bag put down settles in well under a second, a customer still holding it does not.
STABLE_WAIT_SECONDS = 3.0
# Between two weight requests while the platter moves: a POS scale updates its weight
# about five times a second, so asking faster only repeats the same answer.
STABLE_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class StableWeight:
    """A stable weight on the platter, in whole grams (0: the scale is empty and zeroed)."""

    grams: int


@dataclass(frozen=True, slots=True)
class InMotion:
    """The platter is moving: the scale gives no weight until it settles."""


@dataclass(frozen=True, slots=True)
class Underload:
    """The scale reads below zero (it needs zeroing, or something lifts the platter)."""


@dataclass(frozen=True, slots=True)
class Overload:
    """The weight is over the scale's capacity."""


@dataclass(frozen=True, slots=True)
class ScaleFault:
    """The scale did not give a weight: no answer, a garbled one, or a unit we do not sell in."""

    reason: str


@dataclass(frozen=True, slots=True)
class NotZeroed(ScaleFault):
    """A weight was sold and the scale has not read zero since: the item may still be on it."""

    reason: str = "take the previous item off the scale"


WeightReading = StableWeight | InMotion | Underload | Overload | ScaleFault


class ReturnToZero:
    """The return-to-zero rule: after a weight is sold, none is given until the scale is empty.

    A weighing scale for trade must come back to zero between two weighings, or an item
    left on the platter is sold twice. An adapter passes every reading through `passes`;
    `sold()` arms the rule, a reading of zero (or below) releases it. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = False

    @property
    def armed(self) -> bool:
        """True while a sold weight may still be on the platter."""
        return self._armed

    def sold(self) -> None:
        """A weight just read was sold: stable weights are refused until the scale reads zero."""
        with self._lock:
            self._armed = True

    def passes(self, reading: WeightReading) -> WeightReading:
        """The reading as the rule lets it through: NotZeroed for a weight while armed."""
        with self._lock:
            if isinstance(reading, Underload) or reading == StableWeight(0):
                self._armed = False
            elif self._armed and isinstance(reading, StableWeight):
                return NotZeroed()
            return reading


class WeighingError(DeviceError):
    """A weighed item could not be added: the scale gave no stable, sellable weight."""

    def __init__(self, reading: WeightReading | None, message: str) -> None:
        super().__init__(message)
        self.reading = reading  # None: there is no scale


class Scale(Device, Protocol):
    """A checkout scale. Units are grams.

    Blocking: `weigh()` and `zero()` wait for the scale's answer (about a second at most);
    call them off the main thread. Thread-safe: requests from several threads are sent
    one at a time. Neither raises: a scale that does not answer reads as a ScaleFault.
    """

    def weigh(self) -> WeightReading:
        """Ask for the weight on the platter now."""
        ...

    def zero(self) -> WeightReading:
        """Set the empty scale to zero; StableWeight(0) when it did, else why not."""
        ...

    def sold(self) -> None:
        """The weight it last gave was sold: `weigh()` gives NotZeroed until it reads zero."""
        ...


def wait_for_stable(
    scale: Scale,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
    *,
    timeout: float = STABLE_WAIT_SECONDS,
    interval: float = STABLE_POLL_SECONDS,
) -> WeightReading:
    """Ask until the answer is not motion or `timeout` passes; returns the last answer.

    Blocking (it calls `scale.weigh()`): run it off the main thread.
    """
    deadline = monotonic() + timeout
    while True:
        reading = scale.weigh()
        if not isinstance(reading, InMotion) or monotonic() + interval > deadline:
            return reading
        sleep(interval)


def sellable_grams(reading: WeightReading) -> int:
    """The grams to sell from a reading; WeighingError saying why when there are none."""
    if isinstance(reading, StableWeight):
        if reading.grams <= 0:
            raise WeighingError(reading, "the scale is empty: put the item on the scale")
        return reading.grams
    if isinstance(reading, InMotion):
        raise WeighingError(reading, "the weight did not settle: keep the item still")
    if isinstance(reading, Underload):
        raise WeighingError(reading, "the scale reads below zero: empty it and zero it")
    if isinstance(reading, Overload):
        raise WeighingError(reading, "the item is over the scale's capacity")
    if isinstance(reading, NotZeroed):
        raise WeighingError(reading, reading.reason)
    raise WeighingError(reading, f"the scale gave no weight: {reading.reason}")


def weigh_for_sale(
    scale: Scale | None,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
    *,
    timeout: float = STABLE_WAIT_SECONDS,
) -> int:
    """The stable weight to sell, in grams, after a bounded wait; WeighingError saying why not.

    Blocking (it asks the scale): run it off the main thread.
    """
    if scale is None:
        raise no_scale()
    return sellable_grams(wait_for_stable(scale, monotonic, sleep, timeout=timeout))


def no_scale() -> WeighingError:
    """The error for a weighed item on a checkout without a scale."""
    return WeighingError(None, "this checkout has no scale: ask a member of staff")
