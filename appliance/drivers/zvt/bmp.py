"""ZVT BMP fields: a one-byte id, then a value of a fixed or length-prefixed size.

The sizes are PA00P015's bitmap table, for the fields the ECR sends and the ones real
terminals put in a Status-Information. A field not in the table cannot be skipped (its
size is unknown, and guessing misaligns every field after it), so it is an error that
names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from appliance.drivers.zvt.fields import (
    decode_llvar,
    decode_tlv_length,
    encode_llvar,
    encode_tlv_length,
)
from appliance.errors import ZvtError

Coding = Literal["fixed", "llvar", "lllvar", "tlv"]


@dataclass(frozen=True, slots=True)
class BmpFormat:
    """How one BMP's value is laid out: a fixed size, LLVAR, LLLVAR or a TLV container."""

    name: str
    coding: Coding
    size: int = 0  # bytes, for "fixed"


def _fixed(name: str, size: int) -> BmpFormat:
    return BmpFormat(name, "fixed", size)


BMPS: dict[int, BmpFormat] = {
    0x01: _fixed("timeout", 1),
    0x02: _fixed("max_status_infos", 1),
    0x03: _fixed("service_byte", 1),
    0x04: _fixed("amount", 6),  # BCD, minor units
    0x05: _fixed("pump_number", 1),
    0x06: BmpFormat("tlv", "tlv"),
    0x0B: _fixed("trace_number", 3),  # BCD
    0x0C: _fixed("time", 3),  # BCD HHMMSS
    0x0D: _fixed("date", 2),  # BCD MMDD
    0x0E: _fixed("expiry_date", 2),  # BCD YYMM
    0x17: _fixed("card_sequence_number", 2),  # BCD
    0x19: _fixed("payment_type", 1),
    0x22: BmpFormat("pan", "llvar"),  # masked digits are E nibbles
    0x23: BmpFormat("track_2", "llvar"),
    0x24: BmpFormat("track_3", "lllvar"),
    0x27: _fixed("result_code", 1),
    0x29: _fixed("terminal_id", 4),  # BCD
    0x2A: _fixed("vu_number", 15),  # ASCII
    0x2D: BmpFormat("track_1", "llvar"),
    0x2E: BmpFormat("sync_chip_data", "lllvar"),
    0x37: _fixed("original_trace_number", 3),  # BCD
    0x3A: _fixed("cvv", 2),  # BCD
    0x3B: _fixed("aid", 8),
    0x3C: BmpFormat("additional_text", "lllvar"),
    0x3D: _fixed("password", 3),  # BCD
    0x49: _fixed("currency", 2),  # BCD, ISO 4217 numeric
    0x87: _fixed("receipt_number", 2),  # BCD
    0x88: _fixed("turnover_number", 3),  # BCD
    0x8A: _fixed("card_type", 1),
    0x8B: BmpFormat("card_name", "llvar"),  # ends in a null byte
    0x8C: _fixed("card_type_id", 1),
    0xA0: _fixed("result_code_as", 1),
    0xAA: _fixed("long_date", 3),  # BCD YYMMDD
}


def encode_bmp(bmp: int, value: bytes) -> bytes:
    """The id and value of one field; the value's length prefix is added here."""
    layout = BMPS.get(bmp)
    if layout is None:
        raise ZvtError(f"unknown BMP {bmp:02X}: its size is not known")
    if layout.coding == "fixed":
        if len(value) != layout.size:
            raise ZvtError(f"BMP {bmp:02X} ({layout.name}): {len(value)} bytes, not {layout.size}")
        return bytes((bmp,)) + value
    if layout.coding == "tlv":
        return bytes((bmp,)) + encode_tlv_length(len(value)) + value
    return bytes((bmp,)) + encode_llvar(value, 2 if layout.coding == "llvar" else 3)


def decode_bmps(data: bytes, table: dict[int, BmpFormat] = BMPS) -> list[tuple[int, bytes]]:
    """Every (id, value) in an APDU's data, in order; ZvtError names an unknown or short one.

    `table` is the BMP table of what is being read (a Status-Information adds BMP 60).
    """
    fields: list[tuple[int, bytes]] = []
    rest = data
    while rest:
        offset = len(data) - len(rest)
        bmp, rest = rest[0], rest[1:]
        layout = table.get(bmp)
        if layout is None:
            raise ZvtError(f"unknown BMP {bmp:02X} at byte {offset}: its size is not known")
        try:
            value, rest = _take(layout, rest)
        except ZvtError as err:
            raise ZvtError(f"BMP {bmp:02X} ({layout.name}) at byte {offset}: {err}") from err
        fields.append((bmp, value))
    return fields


def _take(layout: BmpFormat, rest: bytes) -> tuple[bytes, bytes]:
    if layout.coding == "fixed":
        if len(rest) < layout.size:
            raise ZvtError(f"{len(rest)} bytes left, {layout.size} needed")
        return rest[: layout.size], rest[layout.size :]
    if layout.coding == "tlv":
        length, rest = decode_tlv_length(rest)
        if len(rest) < length:
            raise ZvtError(f"container of {length} bytes cut short at {len(rest)}")
        return rest[:length], rest[length:]
    return decode_llvar(rest, 2 if layout.coding == "llvar" else 3)
