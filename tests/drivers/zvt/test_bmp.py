"""BMP fields: a Status-Information as real terminals send it, and what is not in the table."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.drivers.zvt.bmp import BMPS, decode_bmps, encode_bmp
from appliance.drivers.zvt.fields import decode_bcd, encode_bcd
from appliance.errors import ZvtError

# The fields of an approved payment's Status-Information (04 0F), in a real terminal's order.
STATUS_FIELDS: list[tuple[int, bytes]] = [
    (0x27, b"\x00"),  # result: approved
    (0x04, encode_bcd(1250, 6)),
    (0x0B, encode_bcd(123, 3)),
    (0x0C, bytes.fromhex("14 30 05")),
    (0x0D, bytes.fromhex("12 06")),
    (0x0E, bytes.fromhex("28 12")),
    (0x17, encode_bcd(1, 2)),
    (0x19, b"\x60"),
    (0x22, bytes.fromhex("67 99 99 EE EE EE 12 34")),  # masked PAN
    (0x29, encode_bcd(52500038, 4)),
    (0x2A, b"123456789012345"),
    (0x3B, b"AID12345"),
    (0x49, encode_bcd(978, 2)),
    (0x87, encode_bcd(17, 2)),
    (0x88, encode_bcd(42, 3)),
    (0x8A, b"\x05"),
    (0x8B, b"girocard\x00"),
    (0x8C, b"\x05"),
    (0xAA, bytes.fromhex("26 12 06")),
    (0x06, bytes.fromhex("1F 10 01 00")),
]


def test_a_status_information_reads_back_field_by_field() -> None:
    data = b"".join(encode_bmp(bmp, value) for bmp, value in STATUS_FIELDS)
    assert data[:9] == bytes.fromhex("27 00 04 00 00 00 00 12 50")
    assert bytes.fromhex("22 F0 F8 67 99 99 EE EE EE 12 34") in data
    assert data.endswith(bytes.fromhex("06 04 1F 10 01 00"))
    fields = decode_bmps(data)
    assert fields == STATUS_FIELDS
    assert decode_bcd(dict(fields)[0x04]) == 1250


def test_an_unknown_bmp_is_named_not_skipped() -> None:
    data = encode_bmp(0x27, b"\x00") + bytes.fromhex("7F 01 02") + encode_bmp(0x19, b"\x40")
    with pytest.raises(ZvtError, match="unknown BMP 7F at byte 2"):
        decode_bmps(data)


def test_a_field_cut_short_names_the_field_and_where() -> None:
    with pytest.raises(ZvtError, match=r"BMP 04 \(amount\) at byte 2: 3 bytes left, 6 needed"):
        decode_bmps(bytes.fromhex("27 00 04 00 12 50"))
    with pytest.raises(ZvtError, match=r"BMP 29 \(terminal_id\): 3 bytes, not 4"):
        encode_bmp(0x29, b"\x01\x02\x03")


@given(st.lists(st.sampled_from(sorted(BMPS)), max_size=12), st.data())
def test_any_fields_of_the_table_survive_a_round_trip(bmps: list[int], data: st.DataObject) -> None:
    fields = []
    for bmp in bmps:
        layout = BMPS[bmp]
        size = layout.size if layout.coding == "fixed" else data.draw(st.integers(0, 300))
        if layout.coding == "llvar":
            size = min(size, 99)
        fields.append((bmp, data.draw(st.binary(min_size=size, max_size=size))))
    assert decode_bmps(b"".join(encode_bmp(bmp, value) for bmp, value in fields)) == fields


@given(st.binary(max_size=120))
def test_random_bytes_only_ever_raise_the_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ZvtError):  # anything else escaping fails the test
        decode_bmps(data)
