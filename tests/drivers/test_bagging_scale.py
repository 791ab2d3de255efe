"""The bagging scale: a second SerialScale on its own pty, read by the BaggingWatch's thread."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from appliance.core.bagging import BaggingWeighed
from appliance.core.devices import DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.device_settings import SerialScaleSettings
from appliance.drivers.manager import DeviceManager
from appliance.drivers.serial_scale import SerialScale
from appliance.drivers.sim.scale import SimScale
from appliance.errors import ConfigError
from appliance.service.bagging_watch import BaggingWatch
from appliance.settings import parse_settings
from tests.drivers.bus_probe import WAIT, BusProbe


@pytest.fixture(autouse=True)
def no_leaks(no_leaked_threads: None) -> Iterator[None]:
    """Every simulator, adapter and watch thread is joined by the end of each test."""
    yield


@pytest.fixture
def sims() -> Iterator[tuple[SimScale, SimScale]]:
    """Two simulated scales on their own ptys: the checkout's and the bagging area's."""
    with SimScale() as checkout, SimScale(link_name="usb-Sim_Bagging_Scale-if00") as bagging:
        yield checkout, bagging


@pytest.fixture
def probe() -> BusProbe:
    """An event bus with a recorder."""
    return BusProbe(EventBus())


@pytest.fixture
def devices(sims: tuple[SimScale, SimScale], probe: BusProbe) -> Iterator[DeviceManager]:
    """Both scales built from their tables by the manager, opened and connected."""
    checkout, bagging = sims
    manager = DeviceManager.build(
        {
            "bagging-scale": SerialScaleSettings(
                port=bagging.port, role="bagging", answer_timeout=0.3
            ),
            "scale": SerialScaleSettings(port=checkout.port, answer_timeout=0.3),
        }
    )
    manager.open_all(probe.bus)
    for name in ("scale", "bagging-scale"):
        probe.wait_for(
            DeviceHealthChanged, lambda e, n=name: e.health.device == n and e.health.state == "ok"
        )
    yield manager
    manager.close_all()


def test_each_scale_keeps_its_role(devices: DeviceManager) -> None:
    """The checkout weighs on its own scale even when the bagging one is listed first."""
    assert isinstance(devices.scale, SerialScale) and devices.scale.name == "scale"
    bagging = devices.bagging_scale
    assert isinstance(bagging, SerialScale) and bagging.name == "bagging-scale"
    assert bagging.role == "bagging"


def test_the_watch_posts_each_new_settled_weight_from_the_wire(
    devices: DeviceManager, sims: tuple[SimScale, SimScale], probe: BusProbe
) -> None:
    checkout, bagging = sims
    bagging.put(0)
    scale = devices.bagging_scale
    assert scale is not None
    with BaggingWatch(scale, probe.bus, interval=0.05) as watch:
        watch.start()
        probe.wait_for(BaggingWeighed, lambda e: e.grams == 0)

        bagging.motion()  # a bag being put down: no weight to post
        mark = len(probe.events)
        asked = len(bagging.requests)
        deadline = time.monotonic() + WAIT
        while len(bagging.requests) < asked + 4 and time.monotonic() < deadline:
            probe.bus.wait(0.05)  # four answers of motion, asked on the wire
        assert len(bagging.requests) >= asked + 4
        assert probe.of(BaggingWeighed)[-1].grams == 0

        bagging.put(450)
        probe.wait_for(BaggingWeighed, lambda e: e.grams == 450, after=mark)

    weighed = [e.grams for e in probe.of(BaggingWeighed)]
    assert weighed == [0, 450]  # repeats of a weight are not news
    assert b"W" in bagging.requests
    assert checkout.requests == []  # the checkout's scale was never asked


def test_two_bagging_scales_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="a and b both have role"):
        parse_settings(
            {
                "device": {"id": "k1"},
                "devices": {
                    "a": {"kind": "serial_scale", "port": "/dev/a", "role": "bagging"},
                    "b": {"kind": "serial_scale", "port": "/dev/b", "role": "bagging"},
                },
            }
        )


def test_staff_are_called_only_after_the_customer_was_reminded() -> None:
    with pytest.raises(ConfigError, match=r"bagging\.help_seconds: must be longer"):
        parse_settings(
            {"device": {"id": "k1"}, "bagging": {"prompt_seconds": 20, "help_seconds": 10}}
        )
