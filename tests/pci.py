"""A PCI DSS scanner for tests: finds full card numbers (PANs) wherever the appliance keeps data.

A PAN is 13 to 19 digits that pass the Luhn check, and never starts with 0 (ISO/IEC 7812
gives major industry identifier 0 to no card; GTIN-14 barcodes often do). It is looked
for as a run of digits standing alone (no letter or digit just before or after it, and
not the fraction of a decimal number) and in the groupings people and terminals print:
4-4-4-4(-3) and 4-6-5 or 4-6-4, separated by one space or dash each. A masked number
("476173******0010", "**** 0010") is not a PAN: its digit runs are short.

Why the boundaries: SQLite writes a row's values one after the other with nothing between
them, so in a database file a hex id ending in digits, a receipt number and the first six
digits of a masked card run together ("...d64921" "0005" "476173") and pass Luhn one
time in ten; so do a timestamp's microseconds and the next column. A card number that
touches other letters or digits is therefore found only when it is known: `known` (the
test cards a run paid with) is looked for everywhere, as ASCII digits and as packed BCD
(how ZVT carries it), whatever surrounds it. Live rows are read value by value
(`scan_sqlite`), where nothing touches.

`scan_text`, `scan_bytes`, `scan_file` (a SQLite file with its -wal and -shm too),
`scan_sqlite` (every value of every table), `scan_log_records` and `scan_payloads` each
return Findings; `report` words them for an assertion message with the number masked, so a
failing test never prints a card number into a CI log either.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

MIN_DIGITS, MAX_DIGITS = 13, 19

# A run of digits with no letter or digit on either side, and not a decimal fraction.
_RUN = re.compile(
    rb"(?<![0-9A-Za-z])(?<![0-9]\.)[0-9]{%d,%d}(?![0-9A-Za-z])" % (MIN_DIGITS, MAX_DIGITS)
)
# The printed groupings, each separator the same single space or dash.
_GROUPED = re.compile(
    rb"(?<![0-9A-Za-z])(?:"
    rb"[0-9]{4}(?P<a>[ -])[0-9]{4}(?P=a)[0-9]{4}(?P=a)[0-9]{4}(?:(?P=a)[0-9]{1,3})?"
    rb"|[0-9]{4}(?P<b>[ -])[0-9]{6}(?P=b)[0-9]{4,5}"
    rb")(?![0-9A-Za-z])"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """A Luhn-valid 13-19 digit number found somewhere it must not be."""

    where: str  # the file and offset, the table row, the log record, the topic
    digits: str

    @property
    def masked(self) -> str:
        """The number as PCI DSS lets it be shown: the first 6 and last 4 digits."""
        return self.digits[:6] + "*" * (len(self.digits) - 10) + self.digits[-4:]

    def __str__(self) -> str:
        return f"{self.where}: {self.masked} ({len(self.digits)} digits, Luhn-valid)"


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def find_pans(data: bytes, known: Collection[str] = ()) -> list[tuple[int, str]]:
    """(offset, digits) of each card number in `data`: ASCII digits, in binary data too.

    Each of `known` is also found touching other digits, and in packed BCD.
    """
    found: dict[int, str] = {}
    for pattern in (_RUN, _GROUPED):
        for match in pattern.finditer(data):
            digits = re.sub(rb"[ -]", b"", match.group()).decode("ascii")
            if _is_pan(digits):
                found.setdefault(match.start(), digits)
    for pan in known:
        for form in (pan.encode("ascii"), bytes.fromhex(pan + "F" * (len(pan) % 2))):
            start = data.find(form)
            while start >= 0:
                found.setdefault(start, pan)
                start = data.find(form, start + 1)
    return sorted(found.items())


def _is_pan(digits: str) -> bool:
    return MIN_DIGITS <= len(digits) <= MAX_DIGITS and digits[0] != "0" and luhn_valid(digits)


def scan_bytes(data: bytes, where: str, known: Collection[str] = ()) -> list[Finding]:
    """Card numbers in raw bytes (a file, a payload), with their offsets."""
    return [Finding(f"{where} @{offset}", pan) for offset, pan in find_pans(data, known)]


def scan_text(text: str, where: str, known: Collection[str] = ()) -> list[Finding]:
    """Card numbers in a text (non-ASCII characters cannot be digits of one)."""
    data = text.encode("ascii", "replace")
    return [Finding(where, pan) for _, pan in find_pans(data, known)]


def scan_file(path: Path, known: Collection[str] = ()) -> list[Finding]:
    """Card numbers in a file's bytes; for a SQLite database, its -wal and -shm files too.

    The raw bytes hold what SQL no longer shows: deleted rows on free pages, old page
    versions in the write-ahead log.
    """
    findings: list[Finding] = []
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate.exists():
            findings += scan_bytes(candidate.read_bytes(), candidate.name, known)
    return findings


def scan_sqlite(path: Path, known: Collection[str] = ()) -> list[Finding]:
    """Card numbers in every value of every table, numbers and blobs included.

    Read-only, through SQLite itself: a PAN stored as an INTEGER or inside a JSON blob is
    as much a leak as one in a TEXT column, and is not ASCII in the file's bytes.
    """
    findings: list[Finding] = []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            str(name)
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # some tables have no rowid
            columns = [d[0] for d in cursor.description]
            for row_no, values in enumerate(cursor, start=1):
                for column, value in zip(columns, values, strict=True):
                    if value is None:
                        continue
                    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
                    for _, digits in find_pans(raw, known):
                        findings.append(Finding(f"{table}.{column} row {row_no}", digits))
    finally:
        db.close()
    return findings


def scan_log_records(
    records: Iterable[logging.LogRecord], known: Collection[str] = ()
) -> list[Finding]:
    """Card numbers in log records as any handler would write them: message and traceback."""
    formatter = logging.Formatter()
    findings: list[Finding] = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + formatter.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        where = f"log {record.name}:{record.lineno} {record.levelname}"
        findings += scan_text(text, where, known)
    return findings


def scan_payloads(
    payloads: Iterable[tuple[str, bytes]], known: Collection[str] = ()
) -> list[Finding]:
    """Card numbers in (topic, payload) pairs, as published to the broker."""
    findings: list[Finding] = []
    for index, (topic, payload) in enumerate(payloads):
        findings += scan_bytes(payload, f"mqtt #{index} {topic}", known)
    return findings


def report(findings: Iterable[Finding]) -> str:
    """One line per finding, numbers masked: for an assertion message."""
    return "card numbers found:\n" + "\n".join(str(finding) for finding in findings)
