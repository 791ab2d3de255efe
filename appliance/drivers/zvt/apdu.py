"""ZVT APDUs: `CLASS INSTR LEN DATA`, with the `FF` extended length."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ZvtError

EXTENDED_LENGTH = 0xFF  # LEN = FF: the next two bytes are the length, little-endian
MAX_SHORT_LENGTH = 0xFE
MAX_LENGTH = 0xFFFF


@dataclass(frozen=True, slots=True)
class Apdu:
    """One ZVT message: its class and instruction bytes and its data."""

    cls: int
    instr: int
    data: bytes = b""

    @property
    def command(self) -> tuple[int, int]:
        """(CLASS, INSTR), e.g. (0x06, 0x01) for Authorization."""
        return self.cls, self.instr

    def encode(self) -> bytes:
        """The bytes on the wire (TCP) or inside a serial frame."""
        length = len(self.data)
        if length > MAX_LENGTH:
            raise ZvtError(
                f"APDU {self.cls:02X} {self.instr:02X}: {length} data bytes, at most 65535"
            )
        if length <= MAX_SHORT_LENGTH:
            header = bytes((self.cls, self.instr, length))
        else:
            header = bytes((self.cls, self.instr, EXTENDED_LENGTH)) + length.to_bytes(2, "little")
        return header + self.data


def apdu_size(buffer: bytes) -> int | None:
    """The size of the whole APDU at the start of `buffer`, or None while its header is short."""
    if len(buffer) < 3:
        return None
    if buffer[2] != EXTENDED_LENGTH:
        return 3 + buffer[2]
    if len(buffer) < 5:
        return None
    return 5 + int.from_bytes(buffer[3:5], "little")


def decode_apdu(buffer: bytes) -> tuple[Apdu, bytes]:
    """The APDU at the start of `buffer` and what follows it; ZvtError if it is cut short."""
    size = apdu_size(buffer)
    if size is None or len(buffer) < size:
        raise ZvtError(
            f"APDU cut short: {len(buffer)} bytes of {size or 'at least 3'}: {buffer.hex(' ')}"
        )
    header = 5 if buffer[2] == EXTENDED_LENGTH else 3
    return Apdu(buffer[0], buffer[1], bytes(buffer[header:size])), bytes(buffer[size:])
