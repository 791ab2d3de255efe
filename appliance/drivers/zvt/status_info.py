"""The Status-Information `04 0F`: a transaction's result and the card data a till may keep.

Field by field from PA00P015's bitmap table. The card number is masked here, whatever the
terminal sends, so a full PAN never leaves the parser (PCI DSS 3.4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance.drivers.zvt.bmp import BMPS, BmpFormat, decode_bmps
from appliance.drivers.zvt.fields import decode_bcd
from appliance.drivers.zvt.tlv import decode_tlv
from appliance.errors import ZvtError

# Terminals print in the ZVT character set; code page 437 is its 8-bit default, and decodes
# every byte, so a strange glyph never breaks a receipt.
TEXT_ENCODING = "cp437"

# BMP 60 (individual totals of an End-of-Day) is not in the shared table: only the
# End-of-Day's Status-Information carries it.
_STATUS_BMPS: dict[int, BmpFormat] = {**BMPS, 0x60: BmpFormat("totals", "lllvar")}

# TLV tag 1F11, the online flag: 00 the PT approved without the host and submits the payment
# later, 01 the host authorised it.
TAG_ONLINE_FLAG = 0x1F11

# A masked card number keeps at most the first 6 and last 4 digits (PCI DSS 3.4).
KEEP_FIRST, KEEP_LAST = 6, 4


@dataclass(frozen=True, slots=True)
class Totals:
    """BMP 60 of an End-of-Day: the receipt range and the count and turnover per card group."""

    first_receipt: int
    last_receipt: int
    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class StatusInformation:
    """`04 0F`: the transaction's result and the card data a till may keep (never a full PAN)."""

    result_code: int | None = None
    amount: int | None = None
    trace_number: int | None = None
    original_trace: int | None = None  # a reversal's: the trace number of what it undid
    time: str = ""  # HHMMSS
    date: str = ""  # MMDD
    masked_pan: str = ""
    card_name: str = ""
    card_type: int | None = None
    card_type_id: int | None = None
    terminal_id: str = ""
    receipt_number: int | None = None
    turnover_number: int | None = None
    auth_code: str = ""
    vu_number: str = ""
    currency: int | None = None
    payment_type: int | None = None
    online: bool | None = None
    additional_text: str = ""
    totals: Totals | None = None

    @property
    def offline(self) -> bool:
        """True when the PT says it approved without the host (it submits the payment later)."""
        return self.online is False


def parse_status_information(data: bytes) -> StatusInformation:
    """The Status-Information in an `04 0F`'s data; ZvtError names a field that does not fit."""
    values: dict[str, object] = {}
    for bmp, value in decode_bmps(data, _STATUS_BMPS):
        if bmp in _STATUS_READERS:
            name, reader = _STATUS_READERS[bmp]
            try:
                values[name] = reader(value)
            except ZvtError as err:
                raise ZvtError(f"BMP {bmp:02X} ({name}): {err}") from err
        elif bmp == 0x06:
            for tag, content in decode_tlv(value):
                if tag == TAG_ONLINE_FLAG:
                    if len(content) != 1:
                        raise ZvtError(f"online flag of {len(content)} bytes, not 1")
                    values["online"] = content != b"\x00"
        # Other known BMPs (expiry date, card sequence number, track data, ...) hold nothing
        # the till may keep or needs: their size is known, so passing them keeps alignment.
    return StatusInformation(**values)  # type: ignore[arg-type]


def mask_pan(value: bytes) -> str:
    """BMP 22 as a masked card number: `E` nibbles are masked digits, an `F` pads the end.

    A terminal that sends more than the first 6 and last 4 digits in clear gets the rest
    masked here, so a full card number never leaves the parser.
    """
    text = value.hex().upper().rstrip("F")
    if any(ch not in "0123456789E" for ch in text):
        raise ZvtError(f"card number nibbles are not digits or E: {value.hex(' ')}")
    chars = list(text.replace("E", "*"))
    clear = [index for index, ch in enumerate(chars) if ch.isdigit()]
    if len(clear) > KEEP_FIRST + KEEP_LAST:
        for index in clear[KEEP_FIRST:-KEEP_LAST]:
            chars[index] = "*"
    return "".join(chars)


def _totals(value: bytes) -> Totals:
    # BMP 60: receipt-no start, receipt-no end (2 BCD each), then per card group a count
    # (1 byte binary) and a turnover (6 BCD): girocard, JCB, Eurocard, Amex, VISA, Diners, rest.
    if len(value) < 4 or (len(value) - 4) % 7:
        raise ZvtError(f"totals of {len(value)} bytes: not 4 plus 7 per card group")
    count = amount = 0
    for start in range(4, len(value), 7):
        count += value[start]
        amount += decode_bcd(value[start + 1 : start + 7])
    return Totals(decode_bcd(value[:2]), decode_bcd(value[2:4]), count, amount)


def digits(value: bytes) -> str:
    """BCD bytes as their digit string, leading zeros kept (a terminal id)."""
    text = value.hex()
    if not text.isdigit():
        raise ZvtError(f"not BCD: {value.hex(' ')}")
    return text


def _text(value: bytes) -> str:
    return value.decode(TEXT_ENCODING).rstrip("\x00").strip()


_STATUS_READERS: dict[int, tuple[str, Callable[[bytes], object]]] = {
    0x27: ("result_code", lambda v: v[0]),
    0x04: ("amount", decode_bcd),
    0x0B: ("trace_number", decode_bcd),
    0x37: ("original_trace", decode_bcd),
    0x0C: ("time", digits),
    0x0D: ("date", digits),
    0x22: ("masked_pan", mask_pan),
    0x8B: ("card_name", _text),
    0x8A: ("card_type", lambda v: v[0]),
    0x8C: ("card_type_id", lambda v: v[0]),
    0x29: ("terminal_id", digits),
    0x87: ("receipt_number", decode_bcd),
    0x88: ("turnover_number", decode_bcd),
    # BMP 3B, 8 bytes, is the authorisation attribute: girocard puts the authorisation
    # code there, other hosts their approval code.
    0x3B: ("auth_code", _text),
    0x2A: ("vu_number", _text),
    0x49: ("currency", decode_bcd),
    0x19: ("payment_type", lambda v: v[0]),
    0x3C: ("additional_text", _text),
    0x60: ("totals", _totals),
}
