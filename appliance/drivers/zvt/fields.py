"""ZVT field codings: packed BCD, LLVAR and LLLVAR, and the TLV container's lengths."""

from __future__ import annotations

from appliance.errors import ZvtError


def encode_bcd(value: int, size: int) -> bytes:
    """`value` as packed BCD in `size` bytes, zero-padded (amount 1250 in 6 bytes: 00 .. 12 50)."""
    digits = str(value)
    if value < 0 or len(digits) > 2 * size:
        raise ZvtError(f"{value} does not fit {size} BCD bytes")
    return bytes.fromhex(digits.zfill(2 * size))


def decode_bcd(data: bytes) -> int:
    """Packed BCD to an integer; ZvtError names a nibble that is not a digit."""
    text = data.hex()
    if not text.isdigit():
        raise ZvtError(f"not BCD: {data.hex(' ')}")
    return int(text) if text else 0


def encode_llvar(data: bytes, digits: int = 2) -> bytes:
    """`data` behind its length, each length digit as an `F` nibble byte (LLVAR 2, LLLVAR 3)."""
    if len(data) >= 10**digits:
        raise ZvtError(f"{len(data)} bytes do not fit a {digits}-digit length")
    return bytes(0xF0 | int(digit) for digit in str(len(data)).zfill(digits)) + data


def decode_llvar(buffer: bytes, digits: int = 2) -> tuple[bytes, bytes]:
    """(the field's data, what follows) of the LLVAR (2) or LLLVAR (3) at the start of `buffer`."""
    head = buffer[:digits]
    if len(head) < digits or any(byte & 0xF0 != 0xF0 or byte & 0x0F > 9 for byte in head):
        raise ZvtError(f"bad {digits}-digit length: {head.hex(' ')}")
    length = int("".join(str(byte & 0x0F) for byte in head))
    end = digits + length
    if len(buffer) < end:
        raise ZvtError(f"field of {length} bytes cut short at {len(buffer) - digits}")
    return bytes(buffer[digits:end]), bytes(buffer[end:])


def encode_tlv_length(length: int) -> bytes:
    """A TLV length: one byte below 0x80, else `81 n` or `82 hi lo` (big-endian, unlike LEN)."""
    if length < 0x80:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    if length <= 0xFFFF:
        return b"\x82" + length.to_bytes(2, "big")
    raise ZvtError(f"TLV length {length} is over 65535")


def decode_tlv_length(buffer: bytes) -> tuple[int, bytes]:
    """(length, what follows) of the TLV length at the start of `buffer`."""
    if not buffer:
        raise ZvtError("TLV length missing")
    first = buffer[0]
    if first < 0x80:
        return first, bytes(buffer[1:])
    size = first & 0x7F
    if size not in (1, 2) or len(buffer) < 1 + size:
        raise ZvtError(f"bad TLV length: {buffer[: 1 + size].hex(' ')}")
    return int.from_bytes(buffer[1 : 1 + size], "big"), bytes(buffer[1 + size :])
