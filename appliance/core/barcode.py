"""Validate scanned retail barcodes (EAN-13, EAN-8, UPC-A) and decode in-store variable measures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from appliance.errors import BarcodeError

__all__ = [
    "GtinKind",
    "MeasureKind",
    "ScannedCode",
    "VariableMeasure",
    "VariableMeasureRule",
    "gtin_check_digit",
    "is_barcode_like",
    "normalize_gtin",
    "parse_barcode",
]

GtinKind = Literal["ean13", "ean8", "upca"]
MeasureKind = Literal["price", "weight"]

_GTIN_LENGTHS = frozenset({8, 12, 13, 14})
_VARIABLE_PREFIXES = frozenset({"02", *(f"2{d}" for d in range(10))})
_MIN_VALUE_DIGITS = 3
_MAX_VALUE_DIGITS = 6
# Longer input is cut in error messages so a stray paste cannot flood the operator display.
_SHOWN_MAX = 32

# GS1 General Specifications 7.9.3: each weighting factor maps a digit to a product digit.
# "2-" and "5-": units of digit*factor minus its tens; "5+": units plus tens; "3": units only.
_WEIGHT_2_MINUS = tuple((d * 2 - d * 2 // 10) % 10 for d in range(10))
_WEIGHT_3 = tuple(d * 3 % 10 for d in range(10))
_WEIGHT_5_PLUS = tuple((d * 5 + d * 5 // 10) % 10 for d in range(10))
_WEIGHT_5_MINUS = tuple((d * 5 - d * 5 // 10) % 10 for d in range(10))
_FOUR_DIGIT_WEIGHTS = (_WEIGHT_2_MINUS, _WEIGHT_2_MINUS, _WEIGHT_3, _WEIGHT_5_MINUS)
_FIVE_DIGIT_WEIGHTS = (
    _WEIGHT_5_PLUS,
    _WEIGHT_2_MINUS,
    _WEIGHT_5_MINUS,
    _WEIGHT_5_PLUS,
    _WEIGHT_2_MINUS,
)


@dataclass(frozen=True, slots=True)
class VariableMeasureRule:
    """How a store lays out GS1 variable-measure (in-store) EAN-13 barcodes for one prefix."""

    prefix: str
    item_digits: int
    measure: MeasureKind
    price_check_digit: bool = False

    def __post_init__(self) -> None:
        """Refuse prefixes and layouts that cannot describe a 13-digit in-store code."""
        if self.prefix not in _VARIABLE_PREFIXES:
            raise ValueError(
                f"variable-measure prefix must be '02' or '20' to '29', not {self.prefix!r}"
            )
        if self.measure not in ("price", "weight"):
            raise ValueError(f"measure must be 'price' or 'weight', not {self.measure!r}")
        # bool is an int subclass; True as a digit count is always a mistake.
        if isinstance(self.item_digits, bool) or not isinstance(self.item_digits, int):
            raise ValueError(f"item_digits must be a whole number, not {self.item_digits!r}")
        if self.item_digits < 1:
            raise ValueError(f"item_digits must be at least 1, not {self.item_digits}")
        value_digits = self.value_digits
        if not _MIN_VALUE_DIGITS <= value_digits <= _MAX_VALUE_DIGITS:
            raise ValueError(
                f"prefix {self.prefix} with {self.item_digits} item digits leaves"
                f" {value_digits} value digits; expected {_MIN_VALUE_DIGITS} to {_MAX_VALUE_DIGITS}"
            )
        # GS1 defines the price check digit only over 4- or 5-digit values.
        if self.price_check_digit and value_digits not in (4, 5):
            raise ValueError(
                f"a price check digit needs 4 or 5 value digits, but prefix {self.prefix} with"
                f" {self.item_digits} item digits leaves {value_digits}"
            )

    @property
    def value_digits(self) -> int:
        """How many digits of the code carry the price or weight."""
        return 13 - 2 - self.item_digits - int(self.price_check_digit) - 1


@dataclass(frozen=True, slots=True)
class VariableMeasure:
    """The value embedded in a variable-measure barcode."""

    measure: MeasureKind
    value: int


@dataclass(frozen=True, slots=True)
class ScannedCode:
    """A validated barcode, reduced to the key the catalog is searched by."""

    raw: str
    kind: GtinKind
    lookup_key: str
    variable: VariableMeasure | None = None


_DIGITS = "0123456789"


def _is_ascii_digits(text: str) -> bool:
    # str.isdigit alone accepts other scripts' digits ("١٢٣") that int() would read.
    return text.isascii() and text.isdigit()


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "…"


def gtin_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit for the digits before it."""
    if not body or not _is_ascii_digits(body):
        raise BarcodeError(f"barcode body {_shown(body)} is not numeric")
    # Weights run 3, 1, 3, 1, ... from the rightmost body digit, so any length works.
    # Summing ASCII bytes in slices is ~5x faster than int() per digit; this runs per scan.
    digits = body.encode("ascii")
    tripled, single = digits[-1::-2], digits[-2::-2]
    total = 3 * (sum(tripled) - 48 * len(tripled)) + sum(single) - 48 * len(single)
    return _DIGITS[-total % 10]


def _check(code: str) -> None:
    expected = gtin_check_digit(code[:-1])
    if code[-1] != expected:
        raise BarcodeError(f"barcode {code} has a bad check digit (expected {expected})")


def normalize_gtin(code: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits (left-padded with zeros); check digit validated."""
    code = code.strip()
    if not code:
        raise BarcodeError("barcode is empty")
    if not _is_ascii_digits(code):
        raise BarcodeError(f"barcode {_shown(code)} is not numeric")
    if len(code) not in _GTIN_LENGTHS:
        raise BarcodeError(
            f"barcode {_shown(code)} has {len(code)} digits; expected 8, 12, 13 or 14"
        )
    _check(code)
    return code.zfill(14)


def _price_check_digit(value: str) -> str:
    """The GS1 price/weight verifier digit (General Specifications 7.9.3) for 4 or 5 digits."""
    if len(value) == 4:
        total = sum(w[int(d)] for w, d in zip(_FOUR_DIGIT_WEIGHTS, value, strict=True))
        return str(total * 3 % 10)
    total = sum(w[int(d)] for w, d in zip(_FIVE_DIGIT_WEIGHTS, value, strict=True))
    # The check digit is the one whose "5-" product brings the sum to a multiple of ten.
    return str(_WEIGHT_5_MINUS.index(-total % 10))


def _decode_variable(
    raw: str, ean13: str, rule: VariableMeasureRule
) -> tuple[str, VariableMeasure]:
    """The lookup key and embedded value of a variable-measure EAN-13 under rule."""
    value_start = 2 + rule.item_digits + int(rule.price_check_digit)
    value = ean13[value_start:12]
    if rule.price_check_digit:
        expected = _price_check_digit(value)
        if ean13[value_start - 1] != expected:
            raise BarcodeError(f"barcode {raw} has a bad price check digit (expected {expected})")
    # Zeroing the value (and its verifier) makes every weighing of one item share a key,
    # the way Odoo's barcode nomenclature matches in-store codes to products.
    body = ean13[: 2 + rule.item_digits].ljust(12, "0")
    key = (body + gtin_check_digit(body)).zfill(14)
    return key, VariableMeasure(measure=rule.measure, value=int(value))


def parse_barcode(text: str, rules: Sequence[VariableMeasureRule] = ()) -> ScannedCode:
    """Validate a scanned retail barcode and reduce it to its catalog lookup key."""
    raw = text.strip()
    if not raw:
        raise BarcodeError("barcode is empty")
    if not _is_ascii_digits(raw):
        raise BarcodeError(f"barcode {_shown(raw)} is not numeric")
    kind: GtinKind
    if len(raw) == 8:
        kind, ean13 = "ean8", ""
    elif len(raw) == 12:
        kind, ean13 = "upca", "0" + raw
    elif len(raw) == 13:
        kind, ean13 = "ean13", raw
    elif len(raw) == 14 and raw[0] == "0":
        # A GTIN-14 with indicator 0 is an EAN-13 written with a leading zero.
        kind, ean13 = "ean13", raw[1:]
    elif len(raw) == 14:
        raise BarcodeError(
            f"barcode {raw} is a case code (GTIN-14 with indicator {raw[0]}), not a retail item"
        )
    else:
        raise BarcodeError(f"barcode {_shown(raw)} has {len(raw)} digits; expected 8, 12 or 13")
    _check(raw)
    if ean13:
        rule = next((r for r in rules if r.prefix == ean13[:2]), None)
        if rule is not None:
            key, measure = _decode_variable(raw, ean13, rule)
            return ScannedCode(raw=raw, kind=kind, lookup_key=key, variable=measure)
    return ScannedCode(raw=raw, kind=kind, lookup_key=raw.zfill(14))


def is_barcode_like(text: str) -> bool:
    """True when text is all digits of a GTIN length (8, 12, 13, 14)."""
    stripped = text.strip()
    return _is_ascii_digits(stripped) and len(stripped) in _GTIN_LENGTHS
