"""The ZVT TLV container (BMP 06): BER-style tags of one or more bytes, each with its length.

PA00P015 uses BER tag rules: a first byte whose low five bits are all set (`1F`) is followed
by more tag bytes, each with bit 8 set while another one follows (`1F 11`, `1F 80 01`); bit 6
of the first byte marks a constructed tag whose value is itself TLV (`25` print texts, `26`
permitted commands). Lengths are big-endian, unlike an APDU's `FF` length.
"""

from __future__ import annotations

from appliance.drivers.zvt.fields import decode_tlv_length, encode_tlv_length
from appliance.errors import ZvtError

MAX_TAG_BYTES = 3


def encode_tag(tag: int) -> bytes:
    """The bytes of a tag number as the container writes it (0x1F11 -> 1F 11)."""
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_tlv(tag: int, value: bytes) -> bytes:
    """One tag, its length and its value."""
    return encode_tag(tag) + encode_tlv_length(len(value)) + value


def decode_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """Every (tag, value) at the top level of a container, in order; ZvtError if malformed."""
    items: list[tuple[int, bytes]] = []
    rest = data
    while rest:
        offset = len(data) - len(rest)
        tag, rest = _take_tag(rest, offset)
        try:
            length, rest = decode_tlv_length(rest)
        except ZvtError as err:
            raise ZvtError(f"TLV tag {tag:X} at byte {offset}: {err}") from err
        if len(rest) < length:
            raise ZvtError(
                f"TLV tag {tag:X} at byte {offset}: {length} bytes cut short at {len(rest)}"
            )
        items.append((tag, rest[:length]))
        rest = rest[length:]
    return items


def is_constructed(tag: int) -> bool:
    """True for a tag whose value is more TLV (bit 6 of its first byte)."""
    return bool(encode_tag(tag)[0] & 0x20)


def _take_tag(buffer: bytes, offset: int) -> tuple[int, bytes]:
    size = 1
    if buffer[0] & 0x1F == 0x1F:
        # Multi-byte tag: continue while the previous byte has bit 8 set.
        size = 2
        while size <= len(buffer) and buffer[size - 1] & 0x80:
            size += 1
    if size > MAX_TAG_BYTES or size > len(buffer):
        raise ZvtError(f"TLV tag at byte {offset} cut short or too long: {buffer[:size].hex(' ')}")
    return int.from_bytes(buffer[:size], "big"), bytes(buffer[size:])
