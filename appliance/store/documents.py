"""The sales ledger: commits sales, refunds and voids, each in one durable transaction."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from peewee import DatabaseError, SqliteDatabase

from appliance.core.ids import new_receipt_token, receipt_number
from appliance.core.sale import Sale, SaleDraft
from appliance.errors import DocumentError
from appliance.store.database import notice_fault
from appliance.store.journal import append_in_transaction, document_event
from appliance.store.payment_attempts import settle_in_commit
from appliance.store.storage_faults import database_folder, store_error

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Sale)

# The commit path uses plain SQL on peewee's connection: it runs for every sale and the
# query builder would cost more than the fsync (see bench: sale commit vs raw sqlite3).
_NEXT_SEQUENCE = "SELECT COALESCE(MAX(sequence), 0) + 1 FROM document"
_INSERT_DOCUMENT = (
    "INSERT INTO document (id, sequence, receipt_number, kind, created_at, currency, total,"
    " tax_total, line_count, refers_to, staff, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_LINE = (
    "INSERT INTO document_line (document_id, line_no, sku, quantity, amount, tax_class,"
    " tax_rate, refers_to_line) VALUES (?,?,?,?,?,?,?,?)"
)
_INSERT_MOVEMENT = (
    "INSERT INTO stock_movement (sku, delta, reason, document_id, created_at) VALUES (?,?,?,?,?)"
)
_UPDATE_STOCK = "UPDATE product SET stock_qty = stock_qty + ? WHERE sku = ?"
_INSERT_OUTBOX = "INSERT INTO outbox (sequence, document_id, payload, created_at) VALUES (?,?,?,?)"
_REFUNDED = (
    "SELECT l.refers_to_line, -SUM(l.quantity) FROM document_line l"
    " JOIN document d ON d.id = l.document_id"
    " WHERE d.refers_to = ? AND d.kind = 'refund' GROUP BY l.refers_to_line"
)


def _utc_text(moment: datetime) -> str:
    """A moment as the UTC ISO text stored in created_at columns (naive counts as UTC).

    The columns are compared as text, which orders moments only when they share one offset.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC).isoformat()
    return moment.astimezone(UTC).isoformat()


def encode_document(sale: Sale) -> bytes:
    """The document as JSON, exactly as stored and sent to the hub."""
    return _encoder.encode(sale)


def decode_document(body: bytes) -> Sale:
    """A stored document back as a Sale."""
    return _decoder.decode(body)


@dataclass(frozen=True, slots=True)
class DocumentRows:
    """The parameters of every statement a commit runs for one document."""

    document: tuple[Any, ...]
    lines: list[tuple[Any, ...]]
    movements: list[tuple[Any, ...]]
    stock: list[tuple[int, str]]
    outbox: tuple[Any, ...]


def document_rows(sale: Sale) -> DocumentRows:
    """What SalesLedger.commit writes for a sealed document (also the benchmark's baseline)."""
    body = encode_document(sale)
    created = _utc_text(sale.created_at)
    moves = [(line.sku, line.stock_delta) for line in sale.lines if line.stock_delta]
    return DocumentRows(
        document=(
            sale.id,
            sale.sequence,
            sale.receipt_number,
            sale.kind,
            created,
            sale.currency,
            sale.total,
            sale.tax_total,
            len(sale.lines),
            sale.references,
            sale.staff,
            body,
        ),
        lines=[
            (
                sale.id,
                line.line_no,
                line.sku,
                line.quantity,
                line.amount,
                line.tax_class,
                line.tax_rate,
                line.refers_to_line,
            )
            for line in sale.lines
        ],
        movements=[(sku, delta, sale.kind, sale.id, created) for sku, delta in moves],
        stock=[(delta, sku) for sku, delta in moves],
        outbox=(sale.sequence, sale.id, body, created),
    )


class SalesLedger:
    """Reads and writes documents; commits are serialised by SQLite's write lock."""

    def __init__(
        self,
        db: SqliteDatabase,
        receipt_prefix: str,
        *,
        clock_verified: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = db
        self._prefix = receipt_prefix
        # Asked at every commit (a cheap system call): a document stamped before the clock
        # was set by NTP or an RTC is flagged, here and at the hub, never silently trusted.
        self._clock_verified = clock_verified

    def clock_unverified_count(self) -> int:
        """How many documents were stamped before the clock was known right."""
        row = self._db.execute_sql(
            "SELECT count(*) FROM document"
            " WHERE json_extract(CAST(body AS TEXT), '$.clock_verified') = 0"
        ).fetchone()
        return int(row[0])

    def commit(self, draft: SaleDraft) -> Sale:
        """Number and store a document with its lines, stock movements and outbox row, atomically.

        Once this returns, the document survives a power cut; if it raises, none of it exists.
        """
        try:
            return self._commit(draft)
        except (DatabaseError, sqlite3.Error) as err:
            # A locked or failing database is the store's error, with the real reason: a
            # full or failing disk says so, whatever SQLite raised on the way out.
            notice_fault(self._db, err)
            raise store_error(
                err, "the sale could not be stored", database_folder(self._db)
            ) from err

    def _commit(self, draft: SaleDraft) -> Sale:
        if draft.clock_verified and not self._clock_verified():
            draft = dataclasses.replace(draft, clock_verified=False)
        if draft.kind == "sale" and not draft.receipt_token:
            # Made here, once per sale: the document the hub gets and the kiosk's QR code
            # both come from the sale this returns, so they cannot disagree.
            stamp = draft.created_at if draft.clock_verified else None
            draft = dataclasses.replace(draft, receipt_token=new_receipt_token(stamp))
        with self._db.atomic("IMMEDIATE"):
            cursor = self._db.cursor()
            sequence = cursor.execute(_NEXT_SEQUENCE).fetchone()[0]
            if draft.references is not None:
                self._check_correction(draft)
            sale = draft.seal(sequence, receipt_number(self._prefix, sequence))
            rows = document_rows(sale)
            cursor.execute(_INSERT_DOCUMENT, rows.document)
            cursor.executemany(_INSERT_LINE, rows.lines)
            cursor.executemany(_INSERT_MOVEMENT, rows.movements)
            cursor.executemany(_UPDATE_STOCK, rows.stock)
            cursor.execute(_INSERT_OUTBOX, rows.outbox)
            # A card tender closes its journalled attempt in this same transaction.
            settle_in_commit(cursor, sale, rows.outbox[3])
            event = document_event(sale, rows.document[-1])
            append_in_transaction(cursor, sale.kind, event, rows.outbox[3])
        log.info("%s %s committed (sequence %d)", sale.kind, sale.receipt_number, sequence)
        return sale

    def _check_correction(self, draft: SaleDraft) -> None:
        """Inside the commit: the referenced sale exists and still has what is corrected."""
        original = self.get(draft.references or "")
        if original is None or original.kind != "sale":
            raise DocumentError(f"{draft.kind} refers to unknown sale {draft.references}")
        kinds = {
            row[0]
            for row in self._db.execute_sql(
                "SELECT kind FROM document WHERE refers_to = ?", (original.id,)
            )
        }
        if "void" in kinds:
            raise DocumentError(f"sale {original.receipt_number} is already voided")
        if draft.kind == "void" and "refund" in kinds:
            raise DocumentError(
                f"sale {original.receipt_number} has refunds; refund the rest instead of voiding"
            )
        if draft.kind == "refund":
            refunded = self.refunded_quantities(original.id)
            sold = {line.line_no: line.quantity for line in original.lines}
            for line in draft.lines:
                ref = line.refers_to_line or 0
                if refunded.get(ref, 0) - line.quantity > sold.get(ref, 0):
                    raise DocumentError(f"line {ref} of {original.receipt_number} is refunded")

    def get(self, document_id: str) -> Sale | None:
        """A document by id."""
        row = self._db.execute_sql("SELECT body FROM document WHERE id = ?", (document_id,))
        found = row.fetchone()
        return decode_document(found[0]) if found else None

    def by_receipt(self, number: str) -> Sale | None:
        """A document by its printed receipt number."""
        row = self._db.execute_sql("SELECT body FROM document WHERE receipt_number = ?", (number,))
        found = row.fetchone()
        return decode_document(found[0]) if found else None

    def refunded_quantities(self, sale_id: str) -> dict[int, int]:
        """{line_no: quantity already refunded} for a sale."""
        return {int(n): int(q) for n, q in self._db.execute_sql(_REFUNDED, (sale_id,))}

    def since(self, moment: datetime | None = None) -> Iterator[Sale]:
        """Documents in sequence order, optionally from `moment` (inclusive, any offset) on."""
        if moment is None:
            rows = self._db.execute_sql("SELECT body FROM document ORDER BY sequence")
        else:
            rows = self._db.execute_sql(
                "SELECT body FROM document WHERE created_at >= ? ORDER BY sequence",
                (_utc_text(moment),),
            )
        for (body,) in rows:
            yield decode_document(body)

    def count(self) -> int:
        """How many documents are stored."""
        return int(self._db.execute_sql("SELECT COUNT(*) FROM document").fetchone()[0])

    def last(self) -> Sale | None:
        """The newest document."""
        row = self._db.execute_sql("SELECT body FROM document ORDER BY sequence DESC LIMIT 1")
        found = row.fetchone()
        return decode_document(found[0]) if found else None
