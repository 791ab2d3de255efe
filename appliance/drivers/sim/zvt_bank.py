"""The emulated ZVT terminal's book, and what it renders from it: Status-Information, receipts.

A real terminal numbers what it books (trace, receipt and turnover numbers), keeps it across
an ECR's reboot, and forgets the day's reversible payments at End-of-Day. The book does the
same, thread-safe; the renderers are pure functions of one entry.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.bmp import encode_bmp
from appliance.drivers.zvt.fields import encode_bcd, encode_llvar
from appliance.drivers.zvt.tlv import encode_tlv

Kind = Literal["payment", "refund", "reversal"]
State = Literal["approved", "declined", "aborted", "reversed"]

# Result codes (PA00P015 chapter 10). 01-63 come from the authorisation system (ISO 8583
# response codes as binary): 05 "do not honour" is the plain decline, 37 (55) a wrong PIN.
DECLINED = 0x05
PIN_WRONG = 0x37
ABORTED = 0x6C  # abort via timeout or abort key: the customer or the ECR cancelled
WRONG_CURRENCY = 0x6F
FUNCTION_NOT_POSSIBLE = 0x83
PROTOCOL_ERROR = 0x9A  # ZVT protocol error, e.g. a mandatory field missing
ALREADY_REVERSED = 0xB4
REVERSAL_NOT_POSSIBLE = 0xB5


@dataclass(frozen=True, slots=True)
class Booked:
    """One transaction in the emulated terminal's book."""

    kind: Kind
    amount: int  # minor units
    receipt_number: int
    trace_number: int
    state: State
    offline: bool
    original_trace: int | None = None  # a reversal's: the trace number of what it undid


# TLV tag 1F11 "online flag" (PA00P015 7.4.1, Miscellaneous tags): 00 the PT approved
# without the host and submits the payment later, 01 the host authorised it. This is how
# the emulator marks an offline approval; the adapter reads the same tag.
TAG_ONLINE_FLAG = 0x1F11
# Print Text-Block (PA00P015 3.6): TLV 25 holds the text lines, each a tag 07; tag 1F07 says
# which receipt it is. Print Line (3.5): its attribute's bit 8 marks the last line, but 80
# alone is reserved, so the last line is also centred (C0).
TAG_PRINT_TEXTS, TAG_TEXT_LINE, TAG_RECEIPT_TYPE = 0x25, 0x07, 0x1F07
CUSTOMER_RECEIPT, ADMIN_RECEIPT = 0x02, 0x03
NORMAL_LINE, LAST_LINE = 0x00, 0xC0
TEXT_ENCODING = "cp437"  # the ZVT character set's 8-bit default
PIN_PAYMENT = 0x70  # BMP 19 in a Status-Information: PIN or EMV payment
VU_NUMBER = b"455600012345678"  # BMP 2A: the merchant's contract number, 15 ASCII digits


@dataclass(frozen=True, slots=True)
class Card:
    """A test card of one brand: its number and its ZVT card-type id (PA00P015 chapter 11)."""

    pan: str
    card_type: int
    expiry: str = "2812"  # YYMM


CARDS: dict[str, Card] = {
    "girocard": Card("6725590000001234", 0x05),
    "Mastercard": Card("5413330089020011", 0x06),
    "American Express": Card("374245455400126", 0x08),
    "Visa": Card("4761739001010010", 0x0A),
    "V PAY": Card("4761739001010119", 0x0D),
    "Maestro": Card("6799998900000060018", 0x2E),
}


# BMP 60's card groups (PA00P015 3.1.3), by ZVT card-type id; any other card is "remaining".
_GROUPS = {0x05: 0, 0x0E: 1, 0x06: 2, 0x08: 3, 0x0A: 4, 0x0D: 4, 0x0C: 5}
_REST_GROUP = 6


@dataclass(frozen=True, slots=True)
class Entry:
    """One booked transaction with what its Status-Information and receipt need."""

    booked: Booked
    result_code: int
    when: datetime
    card: str
    day: int  # the End-of-Day period it was booked in
    turnover: int  # BMP 88


@dataclass(frozen=True, slots=True)
class DayTotals:
    """What an End-of-Day closed: its count and net amount, under its own numbers."""

    count: int
    amount: int
    trace_number: int
    receipt_number: int
    when: datetime
    receipts: tuple[int, int] = (0, 0)  # the first and last receipt number of the day
    groups: tuple[tuple[int, int], ...] = ()  # (count, amount) per BMP 60 card group


class Book:
    """The terminal's transactions, numbered as booked; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        self._trace = self._receipt = self._turnover = self._day = 0

    def add(
        self, kind: Kind, amount: int, state: State, *, offline: bool, card: str, code: int,
        when: datetime, original_trace: int | None = None,
    ) -> Entry:  # fmt: skip
        """Book one transaction under the next trace and receipt numbers."""
        with self._lock:
            booked = Booked(
                kind,
                amount,
                self._next_receipt(),
                self._next_trace(),
                state,
                offline,
                original_trace,
            )
            self._turnover = self._turnover % 999_999 + 1
            entry = Entry(booked, code, when, card, self._day, self._turnover)
            self._entries.append(entry)
            return entry

    def reversible(self, receipt_number: int) -> tuple[Entry | None, int]:
        """(today's approved payment with this receipt number, 0), or (None, result code)."""
        with self._lock:
            for entry in reversed(self._entries):
                booked = entry.booked
                if booked.receipt_number != receipt_number or booked.kind == "reversal":
                    continue
                if booked.state == "reversed":
                    return None, ALREADY_REVERSED
                if booked.state == "approved" and entry.day == self._day:
                    return entry, 0
                break
            return None, REVERSAL_NOT_POSSIBLE

    def set_state(self, entry: Entry, state: State) -> None:
        """Mark a booked transaction reversed (by the ECR, or automatically)."""
        with self._lock:
            index = self._entries.index(entry)
            booked = dataclasses.replace(entry.booked, state=state)
            self._entries[index] = dataclasses.replace(entry, booked=booked)

    def last(self) -> Entry | None:
        """The latest transaction, as it stands now."""
        with self._lock:
            return self._entries[-1] if self._entries else None

    def close_day(self, when: datetime) -> DayTotals:
        """End-of-Day: the day's approved payments less refunds; none is reversible after."""
        with self._lock:
            today = [e for e in self._entries if e.day == self._day]
            groups = [[0, 0] for _ in range(_REST_GROUP + 1)]
            for entry in today:
                booked = entry.booked
                if booked.state == "approved" and booked.kind != "reversal":
                    card = CARDS.get(entry.card, CARDS["girocard"])
                    group = groups[_GROUPS.get(card.card_type, _REST_GROUP)]
                    group[0] += 1
                    group[1] += -booked.amount if booked.kind == "refund" else booked.amount
            receipts = [e.booked.receipt_number for e in today]
            self._day += 1
            return DayTotals(
                sum(count for count, _ in groups),
                sum(amount for _, amount in groups),
                self._next_trace(),
                self._next_receipt(),
                when,
                (receipts[0], receipts[-1]) if receipts else (0, 0),
                tuple((count, amount) for count, amount in groups),
            )

    def entries(self) -> list[Booked]:
        """Every transaction as it stands now, oldest first."""
        with self._lock:
            return [entry.booked for entry in self._entries]

    def _next_trace(self) -> int:
        self._trace = self._trace % 999_999 + 1
        return self._trace

    def _next_receipt(self) -> int:
        self._receipt = self._receipt % 9_999 + 1
        return self._receipt


def masked_pan(pan: str) -> bytes:
    """BMP 22's value: the first 6 and last 4 digits in BCD, `E` for each masked one, `F` pad."""
    digits = pan[:6] + "E" * (len(pan) - 10) + pan[-4:]
    return bytes.fromhex(digits + "F" * (len(digits) % 2))


def status_information(entry: Entry, *, terminal_id: str, currency: int) -> bytes:
    """The data of the `04 0F` reporting `entry`, in the BMP order real terminals use."""
    booked, card = entry.booked, CARDS.get(entry.card, CARDS["girocard"])
    when = entry.when
    approved = entry.result_code == 0
    online = approved and not booked.offline
    auth_code = f"{booked.trace_number:06d}"  # the host's authorisation code, as ASCII
    fields = [
        (0x27, bytes((entry.result_code,))),
        (0x04, encode_bcd(booked.amount, 6)),
        (0x0B, encode_bcd(booked.trace_number, 3)),
        (0x0C, bytes.fromhex(when.strftime("%H%M%S"))),
        (0x0D, bytes.fromhex(when.strftime("%m%d"))),
        (0x0E, bytes.fromhex(card.expiry)),
        (0x17, encode_bcd(1, 2)),
        (0x19, bytes((PIN_PAYMENT,))),
        (0x22, masked_pan(card.pan)),
        (0x29, bytes.fromhex(terminal_id)),
        (0x2A, VU_NUMBER),
        # The authorisation attribute comes from the host: none offline or when declined.
        (0x3B, auth_code.encode("ascii").ljust(8, b"\x00") if online else bytes(8)),
        (0x49, encode_bcd(currency, 2)),
        (0x87, encode_bcd(booked.receipt_number, 2)),
        (0x88, encode_bcd(entry.turnover, 3)),
        (0x8A, bytes((card.card_type,))),
        (0x8B, entry.card.encode(TEXT_ENCODING, errors="replace") + b"\x00"),
        (0x8C, bytes((card.card_type,))),
        (0xAA, bytes.fromhex(when.strftime("%y%m%d"))),
    ]
    if booked.original_trace is not None:  # a reversal names the payment it undid
        fields.append((0x37, encode_bcd(booked.original_trace, 3)))
    if approved:
        fields.append((0x06, encode_tlv(TAG_ONLINE_FLAG, b"\x01" if online else b"\x00")))
    return b"".join(encode_bmp(bmp, value) for bmp, value in fields)


def day_status_information(totals: DayTotals, *, terminal_id: str, currency: int) -> bytes:
    """The data of the End-of-Day's `04 0F`: its total, numbers, date and time (PA00P015 3.1.3)."""
    when = totals.when
    # BMP 60, the individual totals: the day's first and last receipt number (2 BCD each),
    # then per card group a count (1 byte) and a turnover (6 BCD), LLLVAR as a whole.
    groups = b"".join(
        bytes((min(count, 0xFF),)) + encode_bcd(max(amount, 0), 6)
        for count, amount in totals.groups
    )
    first, last = totals.receipts
    fields = [
        (0x27, b"\x00"),
        (0x04, encode_bcd(max(totals.amount, 0), 6)),
        (0x0B, encode_bcd(totals.trace_number, 3)),
        (0x0C, bytes.fromhex(when.strftime("%H%M%S"))),
        (0x0D, bytes.fromhex(when.strftime("%m%d"))),
        (0x29, bytes.fromhex(terminal_id)),
        (0x49, encode_bcd(currency, 2)),
        (0x87, encode_bcd(totals.receipt_number, 2)),
    ]
    individual = encode_bcd(first, 2) + encode_bcd(last, 2) + groups
    # BMP 60 is not in the shared table (only this message carries it): its LLLVAR by hand.
    return (
        b"".join(encode_bmp(bmp, value) for bmp, value in fields)
        + b"\x60"
        + encode_llvar(individual, 3)
    )


_TITLES = {"payment": "Kartenzahlung", "refund": "Gutschrift", "reversal": "Storno"}
_DONE = {"payment": "Zahlung", "refund": "Gutschrift", "reversal": "Storno"}


def receipt_lines(entry: Entry, *, terminal_id: str, currency: str) -> list[str]:
    """The customer receipt of `entry`, as a German terminal words it."""
    booked = entry.booked
    card = CARDS.get(entry.card, CARDS["girocard"])
    status = f"{_DONE[booked.kind]} erfolgt" if entry.result_code == 0 else "Abbruch"
    if booked.offline:
        status += " (offline)"
    return [
        _TITLES[booked.kind],
        entry.card,
        f"Karte ############{card.pan[-4:]}",
        f"Betrag {currency} {_money(booked.amount)}",
        f"Terminal-ID {terminal_id}",
        f"Beleg {booked.receipt_number:04d}  Trace {booked.trace_number:06d}",
        entry.when.strftime("%d.%m.%Y %H:%M:%S"),
        status,
    ]


def day_receipt_lines(totals: DayTotals, *, terminal_id: str, currency: str) -> list[str]:
    """The administration receipt of an End-of-Day."""
    return [
        "Kassenschnitt",
        f"Terminal-ID {terminal_id}",
        f"Anzahl {totals.count}",
        f"Summe {currency} {_money(totals.amount)}",
        totals.when.strftime("%d.%m.%Y %H:%M:%S"),
        "Kassenschnitt erfolgreich",
    ]


def print_messages(lines: list[str], *, text_block: bool, receipt_type: int) -> list[Apdu]:
    """A receipt as the ECR prints it: one 06 D3 text block, or one 06 D1 per line."""
    encoded = [line.encode(TEXT_ENCODING, errors="replace") for line in lines]
    if text_block:
        texts = b"".join(encode_tlv(TAG_TEXT_LINE, line) for line in encoded)
        kind = encode_tlv(TAG_RECEIPT_TYPE, bytes((receipt_type,)))
        return [Apdu(0x06, 0xD3, encode_bmp(0x06, kind + encode_tlv(TAG_PRINT_TEXTS, texts)))]
    last = len(encoded) - 1
    return [
        Apdu(0x06, 0xD1, bytes((LAST_LINE if index == last else NORMAL_LINE,)) + line)
        for index, line in enumerate(encoded)
    ]


def _money(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100},{abs(minor) % 100:02d}"
