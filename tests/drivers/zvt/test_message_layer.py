"""The ZVT message layer and serial framing: known bytes, round trips, and garbage in."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.drivers.zvt.apdu import Apdu, apdu_size, decode_apdu
from appliance.drivers.zvt.fields import (
    decode_bcd,
    decode_llvar,
    decode_tlv_length,
    encode_bcd,
    encode_llvar,
    encode_tlv_length,
)
from appliance.drivers.zvt.serial_frame import crc16_kermit, frame, unframe
from appliance.errors import ZvtError

# The Completion of a Status Enquiry (software version "2.14.15", status 00), as a terminal
# sends it on the serial line: the CRC vector PA00P016's examples are checked against.
STATUS_COMPLETION = bytes.fromhex("060F0BF0F0F7322E31342E313500")
STATUS_COMPLETION_FRAME = bytes.fromhex("1002060F0BF0F0F7322E31342E3135001003B111")


def test_the_crc_is_crc16_kermit_over_the_message_and_etx() -> None:
    assert crc16_kermit(STATUS_COMPLETION + b"\x03") == 0x11B1
    assert crc16_kermit(b"123456789") == 0x2189  # the catalogued check value of KERMIT


def test_a_frame_is_built_and_read_byte_for_byte() -> None:
    assert frame(STATUS_COMPLETION) == STATUS_COMPLETION_FRAME
    assert unframe(STATUS_COMPLETION_FRAME) == STATUS_COMPLETION


def test_a_dle_inside_the_message_is_doubled_on_the_line_and_single_again_after() -> None:
    message = Apdu(0x04, 0x0F, bytes.fromhex("29 10 10 00 01")).encode()  # terminal id 10100001
    framed = frame(message)
    assert framed[2:-4] == bytes.fromhex("04 0F 05 29 10 10 10 10 00 01")
    assert unframe(framed) == message


@pytest.mark.parametrize(
    ("damaged", "why"),
    [
        (b"\x10\x03" + STATUS_COMPLETION_FRAME[2:], "does not start with DLE STX"),
        (STATUS_COMPLETION_FRAME[:-1], "1 CRC bytes"),
        (STATUS_COMPLETION_FRAME[:-2] + b"\x11\xb2", "CRC B211, expected 11B1"),
        (STATUS_COMPLETION_FRAME[:-4], "no DLE ETX"),
        (b"\x10\x02\x06\x10\x05\x10\x03\x00\x00", "DLE followed by 05"),
    ],
)
def test_a_damaged_frame_is_refused_saying_what_is_wrong(damaged: bytes, why: str) -> None:
    with pytest.raises(ZvtError, match=why):
        unframe(damaged)


def test_answers_and_an_authorization_have_their_known_bytes() -> None:
    assert decode_apdu(bytes.fromhex("80 00 00")) == (Apdu(0x80, 0x00), b"")
    wrong_currency, rest = decode_apdu(bytes.fromhex("84 1E 03 6F 09 78 06 0F 00"))
    assert wrong_currency == Apdu(0x84, 0x1E, bytes.fromhex("6F 09 78"))
    assert rest == bytes.fromhex("06 0F 00")  # the next APDU is left for the next read
    amount = b"\x04" + encode_bcd(1250, 6)  # BMP 04: 12.50 in cents, 6 BCD bytes
    currency = b"\x49" + encode_bcd(978, 2)  # BMP 49: EUR
    authorization = Apdu(0x06, 0x01, amount + currency)
    assert authorization.encode() == bytes.fromhex("06 01 0A 04 00 00 00 00 12 50 49 09 78")


def test_a_long_apdu_has_the_ff_length_little_endian() -> None:
    text_block = Apdu(0x06, 0xD3, bytes(300))
    wire = text_block.encode()
    assert wire[:5] == bytes.fromhex("06 D3 FF 2C 01")
    assert apdu_size(wire[:4]) is None  # the extended length is not all there yet
    assert apdu_size(wire[:5]) == 305
    assert decode_apdu(wire) == (text_block, b"")


def test_fields_bcd_llvar_and_tlv_lengths() -> None:
    assert decode_bcd(bytes.fromhex("00 00 00 00 12 50")) == 1250
    masked_pan = bytes.fromhex("F0 F8 67 99 99 EE EE EE 12 34")
    assert decode_llvar(masked_pan) == (bytes.fromhex("67 99 99 EE EE EE 12 34"), b"")
    assert encode_llvar(b"abc", digits=3) == bytes.fromhex("F0 F0 F3") + b"abc"
    assert encode_tlv_length(300) == bytes.fromhex("82 01 2C")  # big-endian, unlike LEN
    assert decode_tlv_length(bytes.fromhex("82 01 2C FF")) == (300, b"\xff")
    with pytest.raises(ZvtError, match="not BCD"):
        decode_bcd(bytes.fromhex("12 3A"))
    with pytest.raises(ZvtError, match="bad 2-digit length"):
        decode_llvar(bytes.fromhex("F0 0A"))
    with pytest.raises(ZvtError, match="does not fit"):
        encode_bcd(10**12, 6)


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=700))
def test_an_apdu_survives_encoding_and_framing(cls: int, instr: int, data: bytes) -> None:
    apdu = Apdu(cls, instr, data)
    wire = apdu.encode()
    assert decode_apdu(wire) == (apdu, b"")
    assert unframe(frame(wire)) == wire


@given(st.binary(max_size=64), st.integers(1, 3))
def test_fields_survive_a_round_trip(data: bytes, digits: int) -> None:
    if len(data) < 10**digits:
        assert decode_llvar(encode_llvar(data, digits) + b"\x01", digits) == (data, b"\x01")
    assert decode_tlv_length(encode_tlv_length(len(data) * 50)) == (len(data) * 50, b"")
    value = int.from_bytes(data[:6], "big") % 10**12
    assert decode_bcd(encode_bcd(value, 6)) == value


@given(st.binary(max_size=80))
def test_random_bytes_only_ever_raise_the_protocol_error(data: bytes) -> None:
    # An IndexError, ValueError or anything else escaping a parser fails the test.
    for parse in (unframe, decode_apdu, decode_llvar, decode_tlv_length, decode_bcd):
        with contextlib.suppress(ZvtError):
            parse(data)
