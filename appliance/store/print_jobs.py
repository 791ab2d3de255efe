"""PrintJobs: the print queue kept in SQLite, so a receipt waiting for paper survives a restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from peewee import DatabaseError, SqliteDatabase

from appliance.core.print_jobs import OPEN_STATES, PrintJob, PrintJobState, now_text
from appliance.core.receipt import Receipt, receipt_from_dict, receipt_to_dict
from appliance.store.models import PrintJobRow
from appliance.store.storage_faults import database_folder, store_error

T = TypeVar("T")

KEPT_DONE_JOBS = 1000  # printed and failed jobs kept for a reprint; older ones are pruned


class PrintJobs:
    """The PrintJobStore port on the appliance database; thread-safe (a connection per thread)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def add(self, printer: str, receipt: Receipt) -> PrintJob:
        """Keep a new queued job (its own transaction); returns it with its id."""
        moment = now_text()
        body = json.dumps(receipt_to_dict(receipt), ensure_ascii=False, sort_keys=True)

        def insert() -> int:
            return int(
                PrintJobRow.insert(
                    printer=printer,
                    receipt_number=receipt.receipt_number,
                    sale_id=receipt.sale_id,
                    copy=receipt.copy,
                    state="queued",
                    body=body.encode(),
                    created_at=moment,
                    updated_at=moment,
                )
                .bind(self._db)
                .execute()
            )

        job_id = self._guard(insert, "the print job could not be kept")
        return PrintJob(job_id, printer, receipt, created_at=moment, updated_at=moment)

    def set_state(self, job_id: int, state: PrintJobState, reason: str = "") -> None:
        """Move a job on; "printing" also counts an attempt."""
        changes: dict[Any, Any] = {
            PrintJobRow.state: state,
            PrintJobRow.reason: reason,
            PrintJobRow.updated_at: now_text(),
        }
        if state == "printing":
            changes[PrintJobRow.attempts] = PrintJobRow.attempts + 1

        def update() -> None:
            PrintJobRow.update(changes).where(PrintJobRow.id == job_id).bind(self._db).execute()

        self._guard(update, f"print job {job_id} could not be updated")

    def get(self, job_id: int) -> PrintJob | None:
        """The job, or None when there is no such job."""
        rows = self._select(PrintJobRow.id == job_id)
        return rows[0] if rows else None

    def unfinished(self, printer: str) -> list[PrintJob]:
        """Jobs of `printer` still queued or printing, oldest first."""
        return self._select(
            (PrintJobRow.printer == printer) & PrintJobRow.state.in_(OPEN_STATES),
        )

    def recent(self, limit: int = 50) -> list[PrintJob]:
        """The newest jobs of every printer, newest first."""
        return self._select(None, newest_first=True, limit=limit)

    def of_receipt(self, receipt_number: str) -> list[PrintJob]:
        """Every job that printed (or tries to print) `receipt_number`, copies too; oldest first."""
        return self._select(PrintJobRow.receipt_number == receipt_number)

    def of_state(self, state: PrintJobState) -> list[PrintJob]:
        """Every job in `state`, oldest first (e.g. those that may have printed)."""
        return self._select(PrintJobRow.state == state)

    def prune(self, keep: int = KEPT_DONE_JOBS) -> int:
        """Forget printed and failed jobs beyond the newest `keep`; returns how many went."""

        def delete() -> int:
            newest = (
                PrintJobRow.select(PrintJobRow.id)
                .where(PrintJobRow.state.in_(("printed", "failed")))
                .order_by(PrintJobRow.id.desc())
                .limit(keep)
            )
            return int(
                PrintJobRow.delete()
                .where(PrintJobRow.state.in_(("printed", "failed")) & PrintJobRow.id.not_in(newest))
                .bind(self._db)
                .execute()
            )

        return self._guard(delete, "old print jobs could not be pruned")

    def _select(
        self, where: object, *, newest_first: bool = False, limit: int | None = None
    ) -> list[PrintJob]:
        def read() -> list[PrintJob]:
            query = PrintJobRow.select().bind(self._db)
            if where is not None:
                query = query.where(where)
            query = query.order_by(PrintJobRow.id.desc() if newest_first else PrintJobRow.id)
            if limit is not None:
                query = query.limit(limit)
            return [_job(row) for row in query]

        return self._guard(read, "print jobs could not be read")

    def _guard(self, work: Callable[[], T], what: str) -> T:
        try:
            return work()
        except DatabaseError as err:
            raise store_error(err, what, database_folder(self._db)) from err


def _job(row: PrintJobRow) -> PrintJob:
    body = row.body if isinstance(row.body, bytes | bytearray) else bytes(row.body)
    return PrintJob(
        id=row.id,
        printer=row.printer,
        receipt=receipt_from_dict(json.loads(body)),
        state=cast(PrintJobState, row.state),
        attempts=row.attempts,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
