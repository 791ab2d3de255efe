"""The scale port's rules: waiting for a stable weight, and which answers may be sold."""

from __future__ import annotations

import pytest

from appliance.core.devices import DeviceHealth
from appliance.core.events import EventBus
from appliance.core.scale import (
    InMotion,
    NotZeroed,
    Overload,
    ReturnToZero,
    ScaleFault,
    StableWeight,
    Underload,
    WeighingError,
    WeightReading,
    sellable_grams,
    wait_for_stable,
)
from appliance.errors import DeviceError


class ScriptedScale:
    """A Scale that gives the answers it was given, one per request, on a fake clock."""

    name = "scale"

    def __init__(self, *answers: WeightReading) -> None:
        self.answers = list(answers)
        self.asked = 0

    def open(self, bus: EventBus) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""

    @property
    def health(self) -> DeviceHealth:
        """Always fine."""
        return DeviceHealth("scale", "scale", "ok")

    def weigh(self) -> WeightReading:
        """The next scripted answer (the last one repeats)."""
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def zero(self) -> WeightReading:
        """Zeroed."""
        return StableWeight(0)

    def sold(self) -> None:
        """Nothing to remember."""


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        """Now."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Move time on."""
        self.now += seconds


def test_motion_is_asked_again_until_a_stable_weight_comes() -> None:
    scale, clock = ScriptedScale(InMotion(), InMotion(), StableWeight(512)), FakeTime()
    reading = wait_for_stable(scale, clock.monotonic, clock.sleep, timeout=3.0, interval=0.2)
    assert reading == StableWeight(512)
    assert scale.asked == 3


def test_the_wait_for_a_stable_weight_is_bounded() -> None:
    scale, clock = ScriptedScale(InMotion()), FakeTime()
    reading = wait_for_stable(scale, clock.monotonic, clock.sleep, timeout=3.0, interval=0.2)
    assert reading == InMotion()
    assert clock.now - 100.0 <= 3.0
    assert scale.asked == 15  # 0.0, 0.2, ... 2.8: every 0.2 s within the three seconds


@pytest.mark.parametrize("answer", [Underload(), Overload(), ScaleFault("no answer")])
def test_anything_but_motion_ends_the_wait_at_once(answer: WeightReading) -> None:
    scale, clock = ScriptedScale(answer), FakeTime()
    assert wait_for_stable(scale, clock.monotonic, clock.sleep) == answer
    assert scale.asked == 1


def test_only_a_stable_positive_weight_can_be_sold() -> None:
    assert sellable_grams(StableWeight(1)) == 1
    for reading, words in [
        (StableWeight(0), "empty"),
        (InMotion(), "keep the item still"),
        (Underload(), "below zero"),
        (Overload(), "capacity"),
        (ScaleFault("no answer"), "no answer"),
    ]:
        with pytest.raises(WeighingError, match=words) as caught:
            sellable_grams(reading)
        assert caught.value.reading == reading


def test_a_weighing_error_is_a_device_error() -> None:
    assert issubclass(WeighingError, DeviceError)


def test_after_a_sale_no_weight_is_given_until_the_scale_reads_zero() -> None:
    """The item left on the platter is not sold twice; an empty scale lets the next one through."""
    rule = ReturnToZero()
    assert rule.passes(StableWeight(500)) == StableWeight(500)
    rule.sold()
    assert rule.passes(StableWeight(500)) == NotZeroed()
    assert rule.passes(InMotion()) == InMotion()  # what is not a weight passes as it is
    assert rule.passes(StableWeight(500)) == NotZeroed()
    assert rule.passes(StableWeight(0)) == StableWeight(0)
    assert rule.passes(StableWeight(700)) == StableWeight(700)


def test_a_reading_below_zero_also_releases_the_rule() -> None:
    rule = ReturnToZero()
    rule.sold()
    assert rule.passes(Underload()) == Underload()
    assert rule.passes(StableWeight(300)) == StableWeight(300)


def test_a_weight_not_returned_to_zero_is_not_sellable_and_says_what_to_do() -> None:
    with pytest.raises(WeighingError, match="take the previous item off the scale") as raised:
        sellable_grams(NotZeroed())
    assert raised.value.reading == NotZeroed()
