"""Shifts: a till's float, cash in and out, and the counted close (docs/cash.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from appliance.core.events import Event
from appliance.errors import TillError

CashCount = Mapping[int, int]  # denomination (minor units) -> pieces
MoveKind = Literal["in", "out"]


class SignOffNeededError(TillError):
    """The counted cash differs from the expected by more than a cashier may close alone."""

    def __init__(self, difference: int, threshold: int) -> None:
        super().__init__(
            f"the counted cash differs from the expected by {difference}, more than"
            f" {threshold}: a supervisor must sign the close off"
        )
        self.difference = difference
        self.threshold = threshold


SignOffNeeded = SignOffNeededError  # the name the till's design uses


def count_total(count: CashCount) -> int:
    """What a count by denomination adds up to, in minor units."""
    return sum(denomination * pieces for denomination, pieces in count.items())


def check_count(count: CashCount, denominations: Sequence[int]) -> dict[int, int]:
    """A count as a plain dict of the configured denominations; TillError on anything else."""
    known = set(denominations)
    checked: dict[int, int] = {}
    for denomination, pieces in count.items():
        if denomination not in known:
            raise TillError(f"{denomination} is not one of this till's notes or coins")
        if type(pieces) is not int or pieces < 0:
            raise TillError(f"the count of {denomination} must be a whole number >= 0")
        if pieces:
            checked[int(denomination)] = pieces
    return checked


def _count_to_json(count: CashCount) -> dict[str, int]:
    # JSON object keys are text: the denomination goes as its decimal string.
    return {str(d): n for d, n in sorted(count.items(), reverse=True)}


def _count_from_json(data: Mapping[str, int]) -> dict[int, int]:
    return {int(d): int(n) for d, n in data.items()}


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Shift:
    """An open (or once open) shift of one till: who opened it and the float they counted.

    `after_sequence`: the shift holds every document numbered after it (until its close),
    so no document falls between two shifts' reports.
    """

    id: str
    number: int  # per till, gapless from 1
    till: str
    staff: str
    currency: str
    opened_at: datetime
    float_count: dict[int, int] = field(default_factory=dict)
    float_total: int = 0
    after_sequence: int = 0

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON values (the journal's "shift_open" body)."""
        return {
            "id": self.id,
            "number": self.number,
            "till": self.till,
            "staff": self.staff,
            "currency": self.currency,
            "opened_at": self.opened_at.isoformat(),
            "float_count": _count_to_json(self.float_count),
            "float_total": self.float_total,
            "after_sequence": self.after_sequence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shift:
        """The shift `to_dict` wrote."""
        return cls(
            id=data["id"],
            number=data["number"],
            till=data["till"],
            staff=data["staff"],
            currency=data["currency"],
            opened_at=_moment(data["opened_at"]),
            float_count=_count_from_json(data["float_count"]),
            float_total=data["float_total"],
            after_sequence=data.get("after_sequence", 0),
        )


@dataclass(frozen=True, slots=True)
class CashMovement:
    """Cash put into (in) or taken out of (out) the drawer, with why and by whom."""

    id: str
    shift_id: str
    kind: MoveKind
    amount: int  # positive, minor units
    reason: str
    staff: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON values (the journal's "cash_in"/"cash_out" body)."""
        return {
            "id": self.id,
            "shift_id": self.shift_id,
            "kind": self.kind,
            "amount": self.amount,
            "reason": self.reason,
            "staff": self.staff,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CashMovement:
        """The movement `to_dict` wrote."""
        return cls(
            id=data["id"],
            shift_id=data["shift_id"],
            kind=data["kind"],
            amount=data["amount"],
            reason=data["reason"],
            staff=data["staff"],
            at=_moment(data["at"]),
        )


def check_movement(kind: str, amount: int, reason: str, staff: str) -> None:
    """Refuse a cash movement the records could not account for."""
    if kind not in ("in", "out"):
        raise TillError(f"cash moves 'in' or 'out', not {kind!r}")
    if type(amount) is not int or amount <= 0:
        raise TillError("the amount of cash moved must be positive")
    if not reason.strip():
        raise TillError("cash in or out needs a reason")
    if not staff.strip():
        raise TillError("cash in or out needs the staff member who moved it")


@dataclass(frozen=True, slots=True)
class ShiftClosing:
    """How a shift ended: the cash counted (None: not counted), expected and the difference.

    A kiosk closed by its schedule has no one to count: `counted` is None and so is the
    difference; the Z says "not counted".
    """

    shift_id: str
    counted: dict[int, int] | None
    counted_total: int | None
    expected: int
    difference: int | None  # counted - expected: negative is cash missing
    staff: str
    signed_off_by: str
    closed_at: datetime
    upto_sequence: int = 0  # the last document the shift holds

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON values (the journal's "shift_close" body)."""
        return {
            "shift_id": self.shift_id,
            "counted": None if self.counted is None else _count_to_json(self.counted),
            "counted_total": self.counted_total,
            "expected": self.expected,
            "difference": self.difference,
            "staff": self.staff,
            "signed_off_by": self.signed_off_by,
            "closed_at": self.closed_at.isoformat(),
            "upto_sequence": self.upto_sequence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShiftClosing:
        """The closing `to_dict` wrote."""
        counted = data["counted"]
        return cls(
            shift_id=data["shift_id"],
            counted=None if counted is None else _count_from_json(counted),
            counted_total=data["counted_total"],
            expected=data["expected"],
            difference=data["difference"],
            staff=data["staff"],
            signed_off_by=data["signed_off_by"],
            closed_at=_moment(data["closed_at"]),
            upto_sequence=data.get("upto_sequence", 0),
        )


def closing_of(
    shift_id: str,
    counted: CashCount | None,
    expected: int,
    *,
    staff: str,
    supervisor: str,
    threshold: int,
    closed_at: datetime,
    upto_sequence: int,
) -> ShiftClosing:
    """The closing of a count; SignOffNeeded when the difference is over `threshold`
    and no supervisor signs it off."""
    if not staff.strip():
        raise TillError("closing a shift needs the staff member who counted")
    if counted is None:
        return ShiftClosing(
            shift_id, None, None, expected, None, staff, supervisor, closed_at, upto_sequence
        )
    total = count_total(counted)
    difference = total - expected
    if abs(difference) > threshold and not supervisor.strip():
        raise SignOffNeededError(difference, threshold)
    return ShiftClosing(
        shift_id,
        dict(counted),
        total,
        expected,
        difference,
        staff,
        supervisor,
        closed_at,
        upto_sequence,
    )


def expected_cash(float_total: int, cash_tendered: int, moved_in: int, moved_out: int) -> int:
    """What the drawer should hold: the float, the cash tenders (net of change, refunds
    and voids, rounding included) and the cash put in less the cash taken out."""
    return float_total + cash_tendered + moved_in - moved_out


@dataclass(frozen=True, slots=True)
class ShiftOpened(Event):
    """A shift was opened on this till."""

    shift: Shift
