"""The shift book: open a till's shift with a float, move cash, close it with its Z.

Each step is one IMMEDIATE transaction that writes its rows and its fiscal journal entry
together ("shift_open", "cash_in"/"cash_out", "shift_close" + "z_report"): a power cut
leaves all of a step or none of it. Any thread may call; each call blocks for the disk.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from peewee import SqliteDatabase

from appliance.core.clock import Clock, SystemClock
from appliance.core.ids import new_document_id
from appliance.core.reports import TillReport
from appliance.core.sale import Sale, draft_void
from appliance.core.shift import (
    CashCount,
    CashMovement,
    MoveKind,
    Shift,
    ShiftClosing,
    check_count,
    check_movement,
    closing_of,
    count_total,
)
from appliance.errors import NoOpenShiftError, TillError
from appliance.store.documents import SalesLedger
from appliance.store.journal import append_in_transaction
from appliance.store.reports import (
    SHIFT_COLUMNS,
    documents_of,
    gather_report,
    movements_of,
    next_z_number,
    open_shift_in,
    shift_of_row,
    store_report,
    utc_text,
    writing,
)

log = logging.getLogger(__name__)

_LAST_SEQUENCE = "SELECT COALESCE(MAX(sequence), 0) FROM document"
_INSERT_SHIFT = (
    "INSERT INTO shift (id, number, till, staff, currency, opened_at, float_count,"
    " float_total, after_sequence) VALUES (?,?,?,?,?,?,?,?,?)"
)
_CLOSE_SHIFT = (
    "UPDATE shift SET closed_at = ?, upto_sequence = ?, counted = ?, counted_total = ?,"
    " expected = ?, difference = ?, closed_by = ?, signed_off_by = ?"
    " WHERE id = ? AND closed_at IS NULL"
)
_INSERT_MOVEMENT = (
    "INSERT INTO cash_movement (id, shift_id, kind, amount, reason, staff, at)"
    " VALUES (?,?,?,?,?,?,?)"
)


def _count_json(count: CashCount) -> str:
    return json.dumps({str(d): n for d, n in sorted(count.items(), reverse=True)})


class ShiftBook:
    """A till's shifts: one open at a time, each holding the documents made while it was.

    A shift opened holds every document numbered after the previous shift's last one, so a
    document stored between two shifts (a card payment recovered at start-up) is in the
    next Z, and no document is in none or in two.
    """

    def __init__(
        self,
        db: SqliteDatabase,
        *,
        till: str,
        currency: str,
        denominations: Sequence[int],
        signoff_threshold: int,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self.till = till
        self.currency = currency
        self.denominations = tuple(denominations)
        self.signoff_threshold = signoff_threshold
        self._clock = clock or SystemClock()

    @property
    def database(self) -> SqliteDatabase:
        """The database the book writes."""
        return self._db

    def now(self) -> datetime:
        """The book's clock, in UTC."""
        return self._clock.now().astimezone(UTC)

    def current(self) -> Shift | None:
        """The open shift, or None."""
        return open_shift_in(self._db.cursor(), self.till)

    def get(self, shift_id: str) -> Shift | None:
        """A shift by id, open or closed."""
        row = self._db.execute_sql(
            f"SELECT {SHIFT_COLUMNS} FROM shift WHERE id = ?", (shift_id,)
        ).fetchone()
        return shift_of_row(row) if row else None

    def last_closed_at(self) -> datetime | None:
        """When the till's last shift was closed, or None if none was."""
        row = self._db.execute_sql(
            "SELECT MAX(closed_at) FROM shift WHERE till = ? AND closed_at IS NOT NULL",
            (self.till,),
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def open(self, staff: str, float_count: CashCount) -> Shift:
        """Open a shift with a float counted by denomination; journalled "shift_open"."""
        if not staff.strip():
            raise TillError("opening a shift needs the staff member who counted the float")
        count = check_count(float_count, self.denominations)
        now = self.now()
        with writing(self._db, "the shift could not be opened") as cursor:
            if (already := open_shift_in(cursor, self.till)) is not None:
                raise TillError(f"shift {already.number} (opened by {already.staff}) is open")
            number, after = cursor.execute(
                "SELECT COALESCE(MAX(number), 0) + 1, MAX(upto_sequence) FROM shift WHERE till = ?",
                (self.till,),
            ).fetchone()
            if after is None:
                # The first shift: documents from before the till kept shifts are in no Z.
                after = cursor.execute(_LAST_SEQUENCE).fetchone()[0]
            shift = Shift(
                id=new_document_id(),
                number=int(number),
                till=self.till,
                staff=staff,
                currency=self.currency,
                opened_at=now,
                float_count=count,
                float_total=count_total(count),
                after_sequence=int(after),
            )
            cursor.execute(
                _INSERT_SHIFT,
                (
                    shift.id,
                    shift.number,
                    shift.till,
                    shift.staff,
                    shift.currency,
                    utc_text(now),
                    _count_json(count),
                    shift.float_total,
                    shift.after_sequence,
                ),
            )
            append_in_transaction(cursor, "shift_open", shift.to_dict(), utc_text(now))
        log.info("shift %d opened by %s with a float of %d", shift.number, staff, shift.float_total)
        return shift

    def move_cash(self, kind: MoveKind, amount: int, reason: str, staff: str) -> CashMovement:
        """Put cash in or take it out, with a reason; journalled "cash_in"/"cash_out".

        Taking out more than the drawer should hold is refused.
        """
        check_movement(kind, amount, reason, staff)
        now = self.now()
        with writing(self._db, "the cash movement could not be stored") as cursor:
            shift = self._open_in(cursor)
            if kind == "out":
                expected = gather_report(
                    cursor, "x", 0, shift=shift, staff=staff, made_at=now
                ).expected_cash
                if amount > expected:
                    raise TillError(f"the drawer should hold {expected}; {amount} cannot be taken")
            movement = CashMovement(new_document_id(), shift.id, kind, amount, reason, staff, now)
            cursor.execute(
                _INSERT_MOVEMENT,
                (movement.id, shift.id, kind, amount, reason, staff, utc_text(now)),
            )
            event = {**movement.to_dict(), "till": self.till, "currency": self.currency}
            append_in_transaction(cursor, f"cash_{kind}", event, utc_text(now))
        log.info("cash %s of %d by %s: %s", kind, amount, staff, reason)
        return movement

    def movements(self, shift: Shift | None = None) -> list[CashMovement]:
        """The cash moved in and out during a shift (the open one by default)."""
        target = shift or self.current()
        return movements_of(self._db.cursor(), target.id) if target else []

    def preview(self, staff: str = "") -> TillReport:
        """The open shift's report as it stands, neither stored nor journalled (number 0)."""
        cursor = self._db.cursor()
        shift = open_shift_in(cursor, self.till)
        if shift is None:
            raise NoOpenShiftError("no shift is open")
        return gather_report(cursor, "x", 0, shift=shift, staff=staff, made_at=self.now())

    def expected_cash(self) -> int:
        """What the drawer should hold now: the float, cash tenders net of change, refunds,
        voids and rounding, and the cash put in less the cash taken out."""
        return self.preview().expected_cash

    def close(
        self, counted: CashCount | None, staff: str, supervisor: str = ""
    ) -> tuple[ShiftClosing, TillReport]:
        """Close the open shift with the cash counted by denomination, and make its Z.

        SignOffNeededError (nothing written) when the difference is over the threshold and
        no `supervisor` signs off. The close, the Z and both journal entries ("shift_close",
        "z_report") are one transaction. `counted` None: nobody counted (a kiosk closed by
        its schedule); the Z says so.
        """
        count = None if counted is None else check_count(counted, self.denominations)
        now = self.now()
        with writing(self._db, "the shift could not be closed") as cursor:
            shift = self._open_in(cursor)
            upto = int(cursor.execute(_LAST_SEQUENCE).fetchone()[0])
            expected = gather_report(
                cursor, "z", 0, shift=shift, staff=staff, made_at=now, upto=upto
            ).expected_cash
            closing = closing_of(
                shift.id,
                count,
                expected,
                staff=staff,
                supervisor=supervisor,
                threshold=self.signoff_threshold,
                closed_at=now,
                upto_sequence=upto,
            )
            cursor.execute(
                _CLOSE_SHIFT,
                (
                    utc_text(now),
                    upto,
                    None if count is None else _count_json(count),
                    closing.counted_total,
                    expected,
                    closing.difference,
                    staff,
                    supervisor,
                    shift.id,
                ),
            )
            event = {**closing.to_dict(), "till": self.till, "shift_number": shift.number}
            append_in_transaction(cursor, "shift_close", event, utc_text(now))
            report = gather_report(
                cursor,
                "z",
                next_z_number(cursor),
                shift=shift,
                staff=staff,
                made_at=now,
                closing=closing,
                upto=upto,
            )
            store_report(cursor, report)
        log.info(
            "shift %d closed by %s: Z %d, expected %d, counted %s",
            shift.number,
            staff,
            report.number,
            expected,
            closing.counted_total,
        )
        return closing, report

    def sales_of(self, shift: Shift | None = None) -> list[Sale]:
        """The documents a shift holds (the open one by default), newest last."""
        target = shift or self.current()
        if target is None:
            return []
        row = self._db.execute_sql(
            "SELECT upto_sequence FROM shift WHERE id = ?", (target.id,)
        ).fetchone()
        upto = row[0] if row else None
        return documents_of(self._db.cursor(), target, upto)

    def can_void(self, sale: Sale) -> str:
        """ "" when `sale` may be voided now, else why not (for the screen to show)."""
        if sale.kind != "sale":
            return f"only a sale can be voided, not a {sale.kind}"
        shift = self.current()
        if shift is None:
            return "no shift is open"
        if sale.sequence <= shift.after_sequence:
            return f"{sale.receipt_number} was sold in an earlier shift: refund it instead"
        kinds = {
            row[0]
            for row in self._db.execute_sql(
                "SELECT kind FROM document WHERE refers_to = ?", (sale.id,)
            ).fetchall()
        }
        if "void" in kinds:
            return f"{sale.receipt_number} is already voided"
        if "refund" in kinds:
            return f"{sale.receipt_number} has refunds: refund the rest instead"
        if any(t.kind != "cash" for t in sale.tenders):
            # A void only records money going back; card and stored value go back through
            # the terminal or the account, which the refund screen drives.
            return f"{sale.receipt_number} was not paid in cash: refund it to the card instead"
        return ""

    def void(
        self, ledger: SalesLedger, sale: Sale, *, staff: str, supervisor: str, reason: str
    ) -> Sale:
        """Void a sale of the open shift with a supervisor's approval; returns the void.

        The check and the commit hold one write lock, so the shift cannot close in between.
        """
        return void_sale(ledger, self, sale, supervisor=supervisor, staff=staff, reason=reason)

    def _open_in(self, cursor: sqlite3.Cursor) -> Shift:
        shift = open_shift_in(cursor, self.till)
        if shift is None:
            raise NoOpenShiftError("no shift is open: open the till first")
        return shift


def void_sale(
    ledger: SalesLedger,
    shifts: ShiftBook,
    sale: Sale,
    *,
    supervisor: str,
    staff: str,
    reason: str,
) -> Sale:
    """Void `sale` (same shift, a supervisor approved, not refunded or voided) and commit it.

    The caller has checked the supervisor (their PIN or badge); their id is kept on the void.
    """
    if not supervisor.strip():
        raise TillError("a void needs a supervisor's approval")
    if not reason.strip():
        raise TillError("a void needs a reason")
    # The check and the commit (a savepoint in this transaction) hold one write lock.
    with writing(shifts.database, "the void could not be stored"):
        why = shifts.can_void(sale)
        if why:
            raise TillError(why)
        draft = draft_void(
            sale,
            device_id=shifts.till,
            now=shifts.now(),
            staff=staff,
            reason=reason,
            approved_by=supervisor,
        )
        return ledger.commit(draft)
