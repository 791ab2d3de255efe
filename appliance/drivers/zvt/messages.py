"""What a ZVT terminal sends the ECR, parsed into typed values (PA00P015 chapters 2 and 3).

`parse(apdu, answering)` knows which request the message answers: a Completion `06 0F`
answering a Status Enquiry starts with the software version, one answering anything else
holds BMPs only. Nothing is skipped silently: a field that does not fit is a ZvtError that
names it, because a guessed size misaligns every field after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.bmp import decode_bmps
from appliance.drivers.zvt.commands import Command
from appliance.drivers.zvt.fields import decode_bcd, decode_llvar
from appliance.drivers.zvt.status_info import (
    TEXT_ENCODING,
    StatusInformation,
    Totals,
    digits,
    mask_pan,
    parse_status_information,
)
from appliance.drivers.zvt.tlv import decode_tlv
from appliance.errors import ZvtError

TAG_PRINT_TEXTS = 0x25
TAG_TEXT_LINE = 0x07
TAG_RECEIPT_TYPE = 0x1F07


@dataclass(frozen=True, slots=True)
class PositiveAck:
    """`80 00 00` (or `84 00 00`): the message was taken."""


@dataclass(frozen=True, slots=True)
class NegativeAck:
    """`84 xx 00`, or with data (`84 1E 03 6F 09 78`, the data led by a result code): refused."""

    code: int
    data: bytes = b""

    @property
    def result_code(self) -> int:
        """The result code that says why: the data's first byte if any, else the code."""
        return self.data[0] if self.data else self.code


@dataclass(frozen=True, slots=True)
class IntermediateStatus:
    """`04 FF`: what the PT shows the customer; `timeout_minutes` restarts T4 when given."""

    status: int
    timeout_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """`06 0F`: the PT hands master rights back; a Status Enquiry's also has its software."""

    status_byte: int | None = None
    software_version: str = ""
    terminal_id: str = ""
    currency: int | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    """`06 1E`: the command ended without success; `result_code` says why (6C: cancelled)."""

    result_code: int
    extra: bytes = b""


@dataclass(frozen=True, slots=True)
class PrintLine:
    """`06 D1`: one receipt line; attribute bit 8 set marks the receipt's last line."""

    attribute: int
    text: str

    @property
    def last(self) -> bool:
        """True on the last line of a receipt."""
        return bool(self.attribute & 0x80)


@dataclass(frozen=True, slots=True)
class PrintTextBlock:
    """`06 D3`: a whole receipt as text lines (TLV 06, tag 25, tags 07)."""

    lines: tuple[str, ...]
    receipt_type: int | None = None


Message = (
    PositiveAck
    | NegativeAck
    | IntermediateStatus
    | StatusInformation
    | Completion
    | Abort
    | PrintLine
    | PrintTextBlock
)


def parse(apdu: Apdu, answering: Command) -> Message:
    """The message in `apdu`, sent while the PT answers `answering`; ZvtError says what is wrong."""
    try:
        return _parse(apdu, answering)
    except ZvtError as err:
        where = f"{apdu.cls:02X} {apdu.instr:02X} answering {answering.name}"
        raise ZvtError(f"{where}: {err}") from err


def _parse(apdu: Apdu, answering: Command) -> Message:
    data = apdu.data
    match apdu.command:
        case (0x80, 0x00) | (0x84, 0x00):
            return PositiveAck()
        case (0x84, code):
            return NegativeAck(code, data)
        case (0x04, 0xFF):
            return _intermediate(data)
        case (0x04, 0x0F):
            return parse_status_information(data)
        case (0x06, 0x0F):
            return _completion(data, answering)
        case (0x06, 0x1E):
            if not data:
                raise ZvtError("Abort without a result code")
            return Abort(data[0], data[1:])
        case (0x06, 0xD1):
            if not data:
                raise ZvtError("Print Line without an attribute")
            return PrintLine(data[0], data[1:].decode(TEXT_ENCODING).rstrip("\x00"))
        case (0x06, 0xD3):
            return _text_block(data)
    raise ZvtError("not a message a PT sends the ECR")


def _intermediate(data: bytes) -> IntermediateStatus:
    if not data:
        raise ZvtError("Intermediate Status without a status")
    rest = data[1:]
    if not rest:
        return IntermediateStatus(data[0])
    if rest[0] == 0x06 and _is_tlv_bmp(rest):
        # A TLV container straight after the status: no timeout byte was sent.
        return IntermediateStatus(data[0])
    if len(rest) > 1 and not _is_tlv_bmp(rest[1:]):
        raise ZvtError(f"unexpected bytes after the timeout: {rest[1:].hex(' ')}")
    return IntermediateStatus(data[0], rest[0])


def _is_tlv_bmp(data: bytes) -> bool:
    try:
        fields = decode_bmps(data)
    except ZvtError:
        return False
    return all(bmp == 0x06 for bmp, _ in fields)


def _completion(data: bytes, answering: Command) -> Completion:
    software = ""
    status: int | None = None
    rest = data
    if answering is Command.STATUS_ENQUIRY:
        # Status Enquiry: [software version LLLVAR] [terminal status byte] [BMPs]. An LLLVAR
        # begins F0-F9 F0-F9 F0-F9; the status byte and BMP 06 never look like that.
        if len(rest) >= 3 and all(0xF0 <= byte <= 0xF9 for byte in rest[:3]):
            raw, rest = decode_llvar(rest, 3)
            software = raw.decode(TEXT_ENCODING).rstrip("\x00")
        if rest:
            status, rest = rest[0], rest[1:]
    values: dict[str, object] = {"status_byte": status, "software_version": software}
    for bmp, value in decode_bmps(rest):
        if bmp == 0x19:
            values["status_byte"] = value[0]
        elif bmp == 0x29:
            values["terminal_id"] = digits(value)
        elif bmp == 0x49:
            values["currency"] = decode_bcd(value)
        elif bmp != 0x06:
            raise ZvtError(f"BMP {bmp:02X} does not belong in a Completion")
    return Completion(**values)  # type: ignore[arg-type]


def _text_block(data: bytes) -> PrintTextBlock:
    lines: list[str] = []
    receipt_type: int | None = None
    fields = decode_bmps(data)
    if not any(bmp == 0x06 for bmp, _ in fields):
        raise ZvtError("Print Text-Block without a TLV container")
    for bmp, value in fields:
        if bmp != 0x06:
            raise ZvtError(f"BMP {bmp:02X} does not belong in a Print Text-Block")
        for tag, content in decode_tlv(value):
            if tag == TAG_PRINT_TEXTS:
                lines += [
                    text.decode(TEXT_ENCODING).rstrip("\x00")
                    for inner, text in decode_tlv(content)
                    if inner == TAG_TEXT_LINE
                ]
            elif tag == TAG_RECEIPT_TYPE and content:
                receipt_type = content[0]
    return PrintTextBlock(tuple(lines), receipt_type)


__all__ = [
    "Abort",
    "Completion",
    "IntermediateStatus",
    "Message",
    "NegativeAck",
    "PositiveAck",
    "PrintLine",
    "PrintTextBlock",
    "StatusInformation",
    "Totals",
    "mask_pan",
    "parse",
]
