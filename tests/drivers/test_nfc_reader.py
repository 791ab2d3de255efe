"""NfcpyReader over nfcpy's real udp driver on 127.0.0.1, with SimNfcTag playing the card.

Also the NDEF parser the reader uses, checked against ndeflib's encoder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import ndef as ndeflib
import nfc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.devices import CardTapped, DeviceHealthChanged, NdefRecord
from appliance.core.events import Event, EventBus
from appliance.device_settings import NfcReaderSettings
from appliance.drivers.ndef import decode_text, parse_message
from appliance.drivers.nfc_reader import NfcpyReader
from appliance.drivers.registry import adapter_for
from appliance.drivers.sim.nfc_tag import SimNfcTag, ntag215
from appliance.errors import DeviceError

ALICE = "04A1B2C3D4E5F6"
BOB = "04112233445566"
WAIT = 10.0  # generous: an upper bound on waiting, never asserted


class Recorder:
    """Every event the bus delivers, in order; waits drive the bus like the main loop."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.events: list[Event] = []
        bus.subscribe(Event, self.events.append)

    def taps(self) -> list[CardTapped]:
        self.bus.drain()
        return [e for e in self.events if isinstance(e, CardTapped)]

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        done = threading.Event()
        timer = threading.Timer(WAIT, done.set)
        timer.start()
        try:
            while not predicate() and not done.is_set():
                self.bus.wait(0.05)
                self.bus.drain()
        finally:
            timer.cancel()
            timer.join()
        assert predicate(), self.events

    def wait_for_taps(self, n: int) -> list[CardTapped]:
        self.wait_for(lambda: len(self.taps()) >= n)
        return self.taps()


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> Any:
        raise NotImplementedError


# Every thread a test starts is joined by its end (tests/drivers/conftest.py).
pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(EventBus())


@pytest.fixture
def sim() -> Iterator[SimNfcTag]:
    with SimNfcTag() as sim:
        yield sim


def reader_for(path: str, **kwargs: Any) -> NfcpyReader:
    return NfcpyReader("badge", path, **kwargs)


def wait_ok(recorder: Recorder, reader: NfcpyReader) -> None:
    recorder.wait_for(lambda: reader.health.state == "ok")


# -- over the wire --------------------------------------------------------------------------


def test_a_tap_posts_the_uid_and_the_ndef_text_record(sim: SimNfcTag, recorder: Recorder) -> None:
    with reader_for(sim.path) as reader:
        reader.open(recorder.bus)
        wait_ok(recorder, reader)
        assert sim.tap(ALICE, "staff:alice")
        [tap] = recorder.wait_for_taps(1)
    assert tap.device == "badge"
    assert tap.uid == ALICE
    assert tap.records == (NdefRecord(1, "T", b"\x02enstaff:alice", "staff:alice"),)


def test_a_card_without_a_message_posts_no_records(sim: SimNfcTag, recorder: Recorder) -> None:
    with reader_for(sim.path) as reader:
        reader.open(recorder.bus)
        assert sim.tap(BOB)
        [tap] = recorder.wait_for_taps(1)
    assert (tap.uid, tap.records) == (BOB, ())


def test_a_held_card_posts_once_and_a_different_card_posts_again(
    sim: SimNfcTag, recorder: Recorder
) -> None:
    with reader_for(sim.path, debounce_ms=60_000) as reader:
        reader.open(recorder.bus)
        assert sim.tap(ALICE, "a", hold=0.6)  # held: the reader keeps seeing it
        assert sim.tap(ALICE, "a")  # lifted and put back at once: a wobbly hand
        assert sim.tap(BOB, "b")
        recorder.wait_for_taps(2)
        # Taps are posted in order from one thread: all of Alice's came before Bob's.
        assert [t.uid for t in recorder.taps()] == [ALICE, BOB]
    assert sim.taps == 3  # the reader read the card each time; it posted it once


def test_the_same_card_after_the_debounce_time_posts_again(
    sim: SimNfcTag, recorder: Recorder
) -> None:
    clock = ManualClock()
    with reader_for(sim.path, debounce_ms=1500, clock=clock) as reader:
        reader.open(recorder.bus)
        # A tap returns once the reader has let go of the card, so each clock move below
        # happens between one card leaving and the next arriving.
        assert sim.tap(ALICE)
        recorder.wait_for_taps(1)
        clock.t += 1.0  # back within 1.5 s of leaving: not posted
        assert sim.tap(ALICE)
        clock.t += 2.0  # back 2 s after leaving: posted
        assert sim.tap(ALICE)
        recorder.wait_for_taps(2)
    assert [t.uid for t in recorder.taps()] == [ALICE, ALICE]


@pytest.mark.parametrize("path", ["usb:dead:beef", "tty:nonexistent0:pn532"])
def test_a_reader_that_cannot_be_opened_is_offline_with_a_reason(
    path: str, recorder: Recorder
) -> None:
    with reader_for(path) as reader:
        reader.open(recorder.bus)
        recorder.wait_for(lambda: "no NFC reader" in reader.health.reason)
        assert reader.health.state == "offline"
        assert path in reader.health.reason
        assert "No such device" in reader.health.reason
    assert reader.health.reason == "closed"


def test_a_lost_reader_goes_offline_and_is_reopened(sim: SimNfcTag, recorder: Recorder) -> None:
    opened: list[Any] = []

    def open_frontend(path: str) -> Any:
        clf = nfc.ContactlessFrontend(path)
        opened.append(clf)
        return clf

    with reader_for(sim.path, frontend_factory=open_frontend) as reader:
        reader.open(recorder.bus)
        wait_ok(recorder, reader)
        # nfcpy's view of an unplugged reader: its device is gone (IOError ENODEV).
        opened[0].close()
        recorder.wait_for(lambda: len(opened) >= 2 and reader.health.state == "ok")
        assert sim.tap(ALICE, "back")
        [tap] = recorder.wait_for_taps(1)
    assert tap.uid == ALICE
    offline = [
        e.health.reason
        for e in recorder.events
        if isinstance(e, DeviceHealthChanged) and e.health.state == "offline"
    ]
    # Reported with the reader's path: "stopped answering" mid-poll, "lost" between polls.
    assert any(sim.path in reason and "NFC reader" in reason for reason in offline), offline


def test_the_reader_keeps_working_when_the_card_side_restarts(recorder: Recorder) -> None:
    first = SimNfcTag()
    try:
        with reader_for(first.path) as reader:
            reader.open(recorder.bus)
            assert first.tap(ALICE)
            recorder.wait_for_taps(1)
            first.close()  # nothing answers on the link any more: to nfcpy, no card
            with SimNfcTag(first.port) as second:
                assert second.tap(BOB)
                recorder.wait_for_taps(2)
            assert reader.health.state == "ok"
    finally:
        first.close()
    assert [t.uid for t in recorder.taps()] == [ALICE, BOB]


def test_a_tap_nobody_reads_returns_false_after_its_timeout(sim: SimNfcTag) -> None:
    assert sim.tap(ALICE, timeout=0.3) is False
    assert sim.taps == 0


def test_close_is_safe_twice(sim: SimNfcTag) -> None:
    reader = reader_for(sim.path)
    reader.open(EventBus())
    reader.close()
    reader.close()
    sim.close()
    sim.close()
    assert reader.health.state == "offline"
    with pytest.raises(RuntimeError):
        sim.tap(ALICE)


def test_the_registry_builds_it_from_its_table() -> None:
    table = NfcReaderSettings(path="tty:USB0:pn532", debounce_ms=900)
    reader = adapter_for("nfc_reader").from_settings("badge", table, {})
    assert isinstance(reader, NfcpyReader)
    assert reader.address == "tty:USB0:pn532"
    assert reader.health.state == "offline"  # not opened


# -- the card image -------------------------------------------------------------------------


def test_the_card_image_has_the_uid_check_bytes_and_an_ndef_tlv() -> None:
    card = ntag215(ALICE, "hi")
    uid = bytes.fromhex(ALICE)
    assert card.memory[0:3] == uid[:3]
    assert card.memory[3] == 0x88 ^ uid[0] ^ uid[1] ^ uid[2]
    assert card.memory[4:8] == uid[3:]
    assert card.memory[12:16] == bytes.fromhex("E1103E00")
    assert card.memory[16] == 0x03
    length = card.memory[17]
    assert parse_message(card.memory[18 : 18 + length])[0].text == "hi"
    assert card.last_ndef_byte == 17 + length
    assert card.memory[18 + length] == 0xFE
    with pytest.raises(ValueError):
        ntag215("04A1B2C3")  # 4 bytes is not an NTAG UID


# -- the NDEF parser ------------------------------------------------------------------------


def encode(*records: Any) -> bytes:
    return b"".join(ndeflib.message_encoder(list(records)))


@given(st.text(max_size=300), st.sampled_from(["en", "de", "pt-BR"]))
def test_text_records_round_trip_from_ndeflib(text: str, language: str) -> None:
    [record] = parse_message(encode(ndeflib.TextRecord(text, language)))
    assert (record.tnf, record.type, record.text) == (1, "T", text)


def test_utf16_text_is_decoded() -> None:
    [record] = parse_message(encode(ndeflib.TextRecord("Grüße", "de", "UTF-16")))
    assert record.text == "Grüße"


def test_several_records_keep_their_order_type_and_payload() -> None:
    message = encode(
        ndeflib.UriRecord("https://example.com/badge/7"),
        ndeflib.TextRecord("alice"),
        ndeflib.Record("application/vnd.shop.badge", "id", b"\x01\x02"),
    )
    uri, text, mime = parse_message(message)
    assert (uri.tnf, uri.type, uri.text) == (1, "U", None)
    assert uri.payload == b"\x04example.com/badge/7"  # 0x04 stands for "https://"
    assert text.text == "alice"
    assert (mime.tnf, mime.type, mime.payload, mime.text) == (
        2,
        "application/vnd.shop.badge",
        b"\x01\x02",
        None,
    )


def test_a_long_record_uses_the_four_byte_length() -> None:
    [record] = parse_message(encode(ndeflib.TextRecord("x" * 400)))
    assert record.text == "x" * 400


def test_chunked_records_are_joined() -> None:
    # MB|CF|SR with TNF 1 and type "T"; then CF|SR with TNF 6; then ME|SR with TNF 6.
    first = bytes([0x80 | 0x20 | 0x10 | 0x01, 1, 4]) + b"T" + b"\x02enH"
    middle = bytes([0x20 | 0x10 | 0x06, 0, 2]) + b"el"
    last = bytes([0x40 | 0x10 | 0x06, 0, 2]) + b"lo"
    [record] = parse_message(first + middle + last)
    assert record.text == "Hello"


@pytest.mark.parametrize(
    "octets",
    [
        bytes([0xD1, 0x01, 0x10]) + b"T" + b"\x02en",  # payload runs past the end
        bytes([0xD1]),  # header cut short
        bytes([0x80 | 0x20 | 0x10 | 0x01, 1, 1]) + b"T" + b"\x02",  # last chunk missing
    ],
)
def test_malformed_messages_raise_device_error(octets: bytes) -> None:
    with pytest.raises(DeviceError, match="malformed NDEF"):
        parse_message(octets)


def test_a_garbled_text_record_keeps_its_payload_without_text() -> None:
    payload = b"\x02en\xff\xfe\xfd"  # not UTF-8
    [record] = parse_message(bytes([0xD1, 1, len(payload)]) + b"T" + payload)
    assert (record.payload, record.text) == (payload, None)
    with pytest.raises(DeviceError):
        decode_text(payload)
