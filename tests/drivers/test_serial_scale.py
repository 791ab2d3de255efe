"""SerialScale over a real pty: SimScale answers the Toledo 8217 protocol, pyserial asks it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import msgspec
import pytest

from appliance.core.devices import DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.core.scale import (
    InMotion,
    NotZeroed,
    Overload,
    ScaleFault,
    StableWeight,
    Underload,
    wait_for_stable,
)
from appliance.device_settings import HardwareSettings, SerialScaleSettings
from appliance.drivers.manager import DeviceManager
from appliance.drivers.registry import adapter_for
from appliance.drivers.serial_scale import FrameReader, SerialScale, parse_answer
from appliance.drivers.sim.scale import SimScale
from tests.drivers.bus_probe import BusProbe


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaks(no_leaked_threads: None) -> Iterator[None]:
    """Every test leaves no thread and no open file descriptor behind."""
    before = _open_fds()
    yield
    assert _open_fds() <= before


@pytest.fixture
def sim() -> Iterator[SimScale]:
    """A simulated 15 kg scale on a pty, empty and zeroed."""
    with SimScale() as scale:
        yield scale


@pytest.fixture
def probe() -> BusProbe:
    """An event bus with a recorder."""
    return BusProbe(EventBus())


@pytest.fixture
def scale(sim: SimScale, probe: BusProbe) -> Iterator[SerialScale]:
    """The real adapter, opened on the simulator's port and connected."""
    adapter = SerialScale("scale", SerialScaleSettings(port=sim.port, answer_timeout=0.3))
    adapter.open(probe.bus)
    probe.wait_for(DeviceHealthChanged, lambda e: e.health.state == "ok")
    yield adapter
    adapter.close()


# --- the protocol, without a port ---


@pytest.mark.parametrize(
    ("frame", "reading"),
    [
        (b"\x0201.250\r", StableWeight(1250)),
        (b"\x02 0.005\r", StableWeight(5)),
        (b"\x0200.000\r", StableWeight(0)),
        (b"\x0215.000N\r", StableWeight(15000)),
        (b"\x02?A\r", InMotion()),  # 0x41: always-one + motion
        (b"\x02?B\r", Overload()),  # 0x42: over capacity
        (b"\x02?D\r", Underload()),  # 0x44: under zero
        (b"\x02?\xc1\r", InMotion()),  # parity in bit 7 (a scale set to 8 bits) is ignored
    ],
)
def test_answers_to_a_weight_request_decode_as_the_manual_says(
    frame: bytes, reading: object
) -> None:
    assert parse_answer(frame, b"W") == reading


def test_a_scale_set_to_pounds_is_a_fault_that_names_the_setting() -> None:
    reading = parse_answer(b"\x0202.75\r", b"W")
    assert isinstance(reading, ScaleFault) and "pounds" in reading.reason


@pytest.mark.parametrize("frame", [b"01.250\r", b"\x02?\x01\r", b"\x02abc\r", b"\x02?\r"])
def test_garbage_is_a_fault_never_a_weight(frame: bytes) -> None:
    assert isinstance(parse_answer(frame, b"W"), ScaleFault)


def test_a_zero_answer_at_centre_of_zero_is_a_zeroed_scale() -> None:
    assert parse_answer(b"\x02?P\r", b"Z") == StableWeight(0)  # 0x50: centre of zero
    outside = parse_answer(b"\x02?H\r", b"Z")  # 0x48: outside the zero capture range
    assert isinstance(outside, ScaleFault) and "zero range" in outside.reason


def test_the_frame_reader_skips_noise_and_joins_split_reads() -> None:
    reader = FrameReader()
    assert reader.feed(b"\x00junk\x0201.") is None
    assert reader.feed(b"250\r") == b"\x0201.250\r"


# --- over the wire ---


def test_a_stable_weight_is_read_in_grams_by_sending_w(sim: SimScale, scale: SerialScale) -> None:
    sim.put(1250)
    assert scale.weigh() == StableWeight(1250)
    assert sim.requests == [b"W"]


def test_motion_underload_and_overload_come_through_as_such(
    sim: SimScale, scale: SerialScale
) -> None:
    sim.put(800)
    sim.motion()
    assert scale.weigh() == InMotion()
    sim.overload()
    assert scale.weigh() == Overload()
    sim.clear()
    assert scale.weigh() == StableWeight(800)
    sim.put(0)
    sim.underload()
    assert scale.weigh() == Underload()


def test_zero_sends_z_and_sets_a_small_load_to_zero(sim: SimScale, scale: SerialScale) -> None:
    sim.put(100)  # a crumb on the platter, within the zero capture range
    assert scale.zero() == StableWeight(0)
    assert scale.weigh() == StableWeight(0)
    sim.put(400)
    assert scale.weigh() == StableWeight(400)
    assert sim.requests == [b"Z", b"W", b"W"]


def test_zero_is_refused_with_an_item_on_the_platter(sim: SimScale, scale: SerialScale) -> None:
    sim.put(2000)
    reading = scale.zero()
    assert isinstance(reading, ScaleFault)
    assert scale.weigh() == StableWeight(2000)


def test_waiting_for_stable_asks_again_until_the_platter_settles(
    sim: SimScale, scale: SerialScale
) -> None:
    sim.put(640)
    sim.settle_after(3)
    reading = wait_for_stable(scale, time.monotonic, time.sleep, timeout=5.0, interval=0.01)
    assert reading == StableWeight(640)
    assert sim.requests == [b"W"] * 4


def test_a_silent_scale_is_a_fault_and_degraded(
    sim: SimScale, scale: SerialScale, probe: BusProbe
) -> None:
    sim.silent = True
    reading = scale.weigh()
    assert isinstance(reading, ScaleFault) and "did not answer" in reading.reason
    probe.wait_for(DeviceHealthChanged, lambda e: e.health.state == "degraded")
    sim.silent = False
    sim.put(300)
    assert scale.weigh() == StableWeight(300)
    assert scale.health.state == "ok"


def test_a_missing_port_reads_as_a_fault_at_once(probe: BusProbe) -> None:
    adapter = SerialScale("scale", SerialScaleSettings(port="/nonexistent/scale"))
    adapter.open(probe.bus)
    try:
        probe.wait_for(DeviceHealthChanged, lambda e: "not found" in e.health.reason)
        reading = adapter.weigh()
        assert isinstance(reading, ScaleFault) and "not found" in reading.reason
    finally:
        adapter.close()


def test_the_scale_is_configured_by_its_devices_table_and_found_by_the_manager(
    sim: SimScale, probe: BusProbe
) -> None:
    table = msgspec.convert(
        {"kind": "serial_scale", "port": sim.port, "answer_timeout": 0.5}, HardwareSettings
    )
    assert isinstance(table, SerialScaleSettings)
    assert (table.baudrate, table.bytesize, table.parity) == (9600, 7, "E")
    assert adapter_for("serial_scale") is SerialScale
    manager = DeviceManager.build({"deli": table})
    manager.open_all(probe.bus)
    try:
        probe.wait_for(DeviceHealthChanged, lambda e: e.health.state == "ok")
        assert manager.scale is manager["deli"]
        sim.put(75)
        assert manager.scale.weigh() == StableWeight(75)
    finally:
        manager.close_all()


def test_a_sold_weight_is_not_given_again_until_the_scale_is_emptied(
    sim: SimScale, scale: SerialScale
) -> None:
    """Return to zero: the bananas left on the platter are not weighed a second time."""
    sim.put(500)
    assert scale.weigh() == StableWeight(500)
    scale.sold()

    assert scale.weigh() == NotZeroed()
    sim.put(0)
    assert scale.weigh() == StableWeight(0)
    sim.put(700)
    assert scale.weigh() == StableWeight(700)


def test_an_item_swapped_between_two_scans_is_seen_leaving_while_idle(
    sim: SimScale, scale: SerialScale
) -> None:
    """While a sold weight may be on the platter the worker watches for zero by itself."""
    sim.put(500)
    assert scale.weigh() == StableWeight(500)
    scale.sold()
    asked = len(sim.requests)
    assert scale.awaiting_zero
    sim.put(0)
    deadline = time.monotonic() + 5.0
    while scale.awaiting_zero:
        assert time.monotonic() < deadline, "the worker never looked at the empty scale"
        time.sleep(0.05)
    assert len(sim.requests) > asked  # asked by the worker itself, not by a weighing

    sim.put(700)
    assert scale.weigh() == StableWeight(700)


def test_an_unplugged_scale_answers_the_caller_goes_offline_and_comes_back(
    sim: SimScale, scale: SerialScale, probe: BusProbe
) -> None:
    """The pty hung up under a live adapter: the request in flight is answered by the worker."""
    sim.put(500)
    assert scale.weigh() == StableWeight(500)

    sim.unplug()
    reading = scale.weigh()

    assert reading == ScaleFault("device unplugged")  # answered, not left to time out
    probe.wait_health("offline", "device unplugged")
    mark = len(probe.events)
    sim.put(700)
    sim.replug()
    probe.wait_health("ok", after=mark)
    assert scale.weigh() == StableWeight(700)


def test_a_7e1_scale_read_as_8n1_is_framed_and_read_with_its_parity_bits() -> None:
    """Even parity on STX (0x02 -> 0x82) and CR (0x0D -> 0x8D): the frame is still found."""
    with_parity = bytes(b | 0x80 for b in b"\x0201.250\r")
    frame = FrameReader().feed(with_parity)
    assert frame == b"\x0201.250\r"
    assert parse_answer(frame, b"W") == StableWeight(1250)
