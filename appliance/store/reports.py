"""X and Z reports in the store: gathered, numbered and journalled inside one transaction.

A Z is made only by ShiftBook.close, in the transaction that closes the shift; its number
is the highest Z number plus one, read under SQLite's write lock and guarded by UNIQUE, so
Z numbers are gapless from 1 and never repeated. An X may be made at any time of a shift.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from peewee import DatabaseError, SqliteDatabase

from appliance.core.reports import ReportKind, TillReport, build_report, tally_drawer
from appliance.core.sale import Sale
from appliance.core.shift import CashMovement, Shift, ShiftClosing
from appliance.errors import NoOpenShiftError
from appliance.store.database import notice_fault
from appliance.store.documents import decode_document
from appliance.store.journal import append_in_transaction
from appliance.store.storage_faults import database_folder, store_error

if TYPE_CHECKING:
    from appliance.store.shifts import ShiftBook

log = logging.getLogger(__name__)

SHIFT_COLUMNS = (
    "id, number, till, staff, currency, opened_at, float_count, float_total, after_sequence"
)
_OPEN_SHIFT = f"SELECT {SHIFT_COLUMNS} FROM shift WHERE till = ? AND closed_at IS NULL"
_DOCUMENTS = "SELECT body FROM document WHERE sequence > ? ORDER BY sequence"
_DOCUMENTS_UPTO = "SELECT body FROM document WHERE sequence > ? AND sequence <= ? ORDER BY sequence"
_MOVEMENTS = (
    "SELECT id, shift_id, kind, amount, reason, staff, at FROM cash_movement"
    " WHERE shift_id = ? ORDER BY at, id"
)
# Read by name only: the drawer log's table may gain columns; reason and staff are enough.
# A shift's openings start where the till's previous shift closed, like its documents, so
# an opening between two shifts (the drawer opened by hand at night) is in the next report.
_DRAWER = "SELECT reason, staff FROM drawer_opening WHERE opened_at > ? AND opened_at <= ?"
_DRAWER_FIRST = "SELECT reason, staff FROM drawer_opening WHERE opened_at >= ? AND opened_at <= ?"
_PREVIOUS_CLOSE = "SELECT closed_at FROM shift WHERE till = ? AND number = ?"
_LAST_Z = "SELECT body FROM till_report WHERE z_number IS NOT NULL ORDER BY z_number DESC LIMIT 1"
_NEXT_Z = "SELECT COALESCE(MAX(z_number), 0) + 1 FROM till_report"
_NEXT_X = "SELECT COALESCE(MAX(number), 0) + 1 FROM till_report WHERE shift_id = ? AND kind = 'x'"
_INSERT = (
    "INSERT INTO till_report (kind, number, z_number, shift_id, staff, made_at, body)"
    " VALUES (?,?,?,?,?,?,?)"
)


def utc_text(moment: datetime) -> str:
    """A moment as the UTC ISO text the tables store."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


@contextmanager
def writing(db: SqliteDatabase, what: str) -> Iterator[sqlite3.Cursor]:
    """One IMMEDIATE transaction; a database failure becomes the store's error, saying `what`."""
    try:
        with db.atomic("IMMEDIATE"):
            yield db.cursor()
    except (DatabaseError, sqlite3.Error) as err:
        notice_fault(db, err)
        raise store_error(err, what, database_folder(db)) from err


def shift_of_row(row: tuple[Any, ...]) -> Shift:
    """A Shift from the SHIFT_COLUMNS of a row."""
    id_, number, till, staff, currency, opened_at, count, float_total, after = row
    return Shift(
        id=id_,
        number=int(number),
        till=till,
        staff=staff,
        currency=currency,
        opened_at=datetime.fromisoformat(opened_at),
        float_count={int(d): int(n) for d, n in json.loads(count).items()},
        float_total=int(float_total),
        after_sequence=int(after),
    )


def open_shift_in(cursor: sqlite3.Cursor, till: str) -> Shift | None:
    """The till's open shift, read through `cursor` (inside a transaction or not)."""
    row = cursor.execute(_OPEN_SHIFT, (till,)).fetchone()
    return shift_of_row(row) if row else None


def documents_of(cursor: sqlite3.Cursor, shift: Shift, upto: int | None = None) -> list[Sale]:
    """The documents a shift holds, in sequence order (all after it while it is open)."""
    if upto is None:
        rows = cursor.execute(_DOCUMENTS, (shift.after_sequence,))
    else:
        rows = cursor.execute(_DOCUMENTS_UPTO, (shift.after_sequence, upto))
    return [decode_document(body) for (body,) in rows.fetchall()]


def movements_of(cursor: sqlite3.Cursor, shift_id: str) -> list[CashMovement]:
    """The cash put in and taken out during a shift, in order."""
    return [
        CashMovement(id_, sid, kind, int(amount), reason, staff, datetime.fromisoformat(at))
        for id_, sid, kind, amount, reason, staff, at in cursor.execute(
            _MOVEMENTS, (shift_id,)
        ).fetchall()
    ]


def gather_report(
    cursor: sqlite3.Cursor,
    kind: ReportKind,
    number: int,
    *,
    shift: Shift,
    staff: str,
    made_at: datetime,
    closing: ShiftClosing | None = None,
    upto: int | None = None,
) -> TillReport:
    """The report of `shift` as the tables hold it now (nothing is written)."""
    previous_close = cursor.execute(_PREVIOUS_CLOSE, (shift.till, shift.number - 1)).fetchone()
    if previous_close and previous_close[0]:
        span = (_DRAWER, previous_close[0])
    else:
        span = (_DRAWER_FIRST, utc_text(shift.opened_at))
    drawer = cursor.execute(span[0], (span[1], utc_text(made_at))).fetchall()
    last = cursor.execute(_LAST_Z).fetchone()
    previous = int(json.loads(last[0])["grand_total"]) if last else 0
    return build_report(
        kind,
        number,
        device=shift.till,
        shift=shift,
        staff=staff,
        made_at=made_at,
        documents=documents_of(cursor, shift, upto),
        movements=movements_of(cursor, shift.id),
        drawer=tally_drawer((str(reason), str(who or "")) for reason, who in drawer),
        previous_grand_total=previous,
        closing=closing,
        upto_sequence=upto,
    )


def next_z_number(cursor: sqlite3.Cursor) -> int:
    """The number the next Z gets: read under the write lock, so it cannot be taken twice."""
    return int(cursor.execute(_NEXT_Z).fetchone()[0])


def store_report(cursor: sqlite3.Cursor, report: TillReport) -> None:
    """Keep a report and journal it ("x_report" or "z_report") in the caller's transaction."""
    body = report.to_dict()
    made = utc_text(report.made_at)
    cursor.execute(
        _INSERT,
        (
            report.kind,
            report.number,
            report.number if report.kind == "z" else None,
            report.shift_id,
            report.staff,
            made,
            json.dumps(body, sort_keys=True).encode(),
        ),
    )
    append_in_transaction(cursor, f"{report.kind}_report", body, made)


def _report(body: bytes | str) -> TillReport:
    return TillReport.from_dict(json.loads(body))


class ReportBook:
    """Makes X reports and reads stored X and Z reports; any thread (blocks for the disk)."""

    def __init__(self, db: SqliteDatabase, shifts: ShiftBook) -> None:
        self._db = db
        self._shifts = shifts

    def x_report(self, staff: str) -> TillReport:
        """Report the open shift so far, store it and journal it ("x_report")."""
        now = self._shifts.now()
        with writing(self._db, "the X report could not be stored") as cursor:
            shift = open_shift_in(cursor, self._shifts.till)
            if shift is None:
                raise NoOpenShiftError("no shift is open: there is nothing to report")
            number = int(cursor.execute(_NEXT_X, (shift.id,)).fetchone()[0])
            report = gather_report(cursor, "x", number, shift=shift, staff=staff, made_at=now)
            store_report(cursor, report)
        log.info("X report %d of shift %d made by %s", number, shift.number, staff)
        return report

    def get_z(self, number: int) -> TillReport | None:
        """The Z report with this number."""
        row = self._db.execute_sql(
            "SELECT body FROM till_report WHERE z_number = ?", (number,)
        ).fetchone()
        return _report(row[0]) if row else None

    def last_z(self) -> TillReport | None:
        """The newest Z report."""
        row = self._db.execute_sql(_LAST_Z).fetchone()
        return _report(row[0]) if row else None

    def of_shift(self, shift_id: str) -> list[TillReport]:
        """A shift's reports, oldest first (its X reports, then its Z)."""
        rows = self._db.execute_sql(
            "SELECT body FROM till_report WHERE shift_id = ? ORDER BY id", (shift_id,)
        )
        return [_report(body) for (body,) in rows.fetchall()]

    def list(self, limit: int = 50, kind: ReportKind | None = None) -> list[TillReport]:
        """Stored reports, newest first; only X or only Z reports with `kind`."""
        if kind is None:
            rows = self._db.execute_sql(
                "SELECT body FROM till_report ORDER BY id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._db.execute_sql(
                "SELECT body FROM till_report WHERE kind = ? ORDER BY id DESC LIMIT ?",
                (kind, limit),
            )
        return [_report(body) for (body,) in rows.fetchall()]
