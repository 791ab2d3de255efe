"""The serial line's frames (PA00P016): `DLE STX`, the APDU with DLE doubled, `DLE ETX`, CRC.

The spec calls the checksum "CRC-XModem", but its arithmetic is CRC-16/KERMIT (reflected
polynomial 0x8408, initial value 0), over the unstuffed APDU plus ETX, sent low byte first.
"""

from __future__ import annotations

from appliance.errors import ZvtError

DLE, STX, ETX = 0x10, 0x02, 0x03
ACK, NAK = 0x06, 0x15


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT of `data`."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def frame(apdu: bytes) -> bytes:
    """The frame that carries `apdu` on the serial line."""
    stuffed = apdu.replace(bytes((DLE,)), bytes((DLE, DLE)))
    crc = crc16_kermit(apdu + bytes((ETX,)))
    return bytes((DLE, STX)) + stuffed + bytes((DLE, ETX)) + crc.to_bytes(2, "little")


def unframe(data: bytes) -> bytes:
    """The APDU inside one whole frame; ZvtError for a bad start, end, stuffing or CRC."""
    if data[:2] != bytes((DLE, STX)):
        raise ZvtError(f"frame does not start with DLE STX: {data[:2].hex(' ')}")
    apdu = bytearray()
    index = 2
    while index < len(data) - 1:
        byte = data[index]
        if byte != DLE:
            apdu.append(byte)
            index += 1
            continue
        follower = data[index + 1]
        if follower == DLE:
            apdu.append(DLE)
            index += 2
        elif follower == ETX:
            return _checked(bytes(apdu), data[index + 2 :])
        else:
            raise ZvtError(f"DLE followed by {follower:02X} at byte {index} of the frame")
    raise ZvtError("frame has no DLE ETX")


def _checked(apdu: bytes, crc_bytes: bytes) -> bytes:
    if len(crc_bytes) != 2:
        raise ZvtError(f"frame ends with {len(crc_bytes)} CRC bytes, not 2")
    expected = crc16_kermit(apdu + bytes((ETX,)))
    got = int.from_bytes(crc_bytes, "little")
    if got != expected:
        raise ZvtError(f"frame CRC {got:04X}, expected {expected:04X}")
    return apdu
