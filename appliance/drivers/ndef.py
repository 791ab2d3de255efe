"""NDEF messages read from a tag: split into records, with text records decoded.

Parsed here rather than through ndeflib so that every record keeps its raw type name
format, type and payload (badges carry vendor records that no library knows).
"""

from __future__ import annotations

from appliance.core.devices import NdefRecord
from appliance.errors import DeviceError

TNF_WELL_KNOWN = 1
TNF_UNCHANGED = 6  # the type of a middle or last chunk: the first chunk's type

_MB, _ME, _CF, _SR, _IL = 0x80, 0x40, 0x20, 0x10, 0x08


def parse_message(octets: bytes) -> tuple[NdefRecord, ...]:
    """Split an NDEF message into records; raises DeviceError when it is malformed."""
    records: list[NdefRecord] = []
    offset = 0
    chunk: tuple[int, str, bytearray] | None = None  # a chunked record being joined
    while offset < len(octets):
        header = octets[offset]
        tnf, type_, payload, offset = _read_record(octets, offset)
        if chunk is not None:
            if tnf != TNF_UNCHANGED or type_:
                raise DeviceError("malformed NDEF: a record chunk carries its own type")
            chunk[2].extend(payload)
            if not header & _CF:
                records.append(_record(chunk[0], chunk[1], bytes(chunk[2])))
                chunk = None
        elif header & _CF:
            chunk = (tnf, type_, bytearray(payload))
        else:
            records.append(_record(tnf, type_, payload))
        if header & _ME:
            break
    if chunk is not None:
        raise DeviceError("malformed NDEF: the last record chunk is missing")
    return tuple(records)


def decode_text(payload: bytes) -> str:
    """The text of an NFC Forum Text record payload (status byte, language, text)."""
    if not payload:
        raise DeviceError("malformed NDEF: empty text record")
    status = payload[0]
    start = 1 + (status & 0x3F)  # skip the IANA language code, e.g. "en"
    if start > len(payload):
        raise DeviceError("malformed NDEF: text record language runs past its payload")
    body = payload[start:]
    try:
        if status & 0x80:
            # UTF-16 without a byte order mark is big-endian (Text RTD 1.0, 3.4).
            bom = body[:2] in (b"\xfe\xff", b"\xff\xfe")
            return body.decode("utf-16" if bom else "utf-16-be")
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DeviceError(f"malformed NDEF: text record is not valid text: {err}") from err


def _read_record(octets: bytes, offset: int) -> tuple[int, str, bytes, int]:
    """One record at `offset`: (tnf, type, payload, offset of the next record)."""
    header = octets[offset]
    pos = offset + 1
    fixed = 2 if header & _SR else 5  # type length, then a 1- or 4-byte payload length
    if header & _IL:
        fixed += 1
    if pos + fixed > len(octets):
        raise DeviceError("malformed NDEF: record header runs past the message")
    type_length = octets[pos]
    if header & _SR:
        payload_length = octets[pos + 1]
        pos += 2
    else:
        payload_length = int.from_bytes(octets[pos + 1 : pos + 5], "big")
        pos += 5
    id_length = 0
    if header & _IL:
        id_length = octets[pos]
        pos += 1
    end = pos + type_length + id_length + payload_length
    if end > len(octets):
        raise DeviceError("malformed NDEF: record runs past the message")
    type_ = octets[pos : pos + type_length].decode("ascii", errors="replace")
    payload = octets[pos + type_length + id_length : end]
    return header & 0x07, type_, bytes(payload), end


def _record(tnf: int, type_: str, payload: bytes) -> NdefRecord:
    text = None
    if tnf == TNF_WELL_KNOWN and type_ == "T":
        try:
            text = decode_text(payload)
        except DeviceError:
            # A garbled text record is still a record: keep its payload, not its text.
            text = None
    return NdefRecord(tnf=tnf, type=type_, payload=payload, text=text)
