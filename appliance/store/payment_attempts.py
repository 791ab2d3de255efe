"""The payment journal: every card attempt, durable before the terminal hears of it.

An attempt moves through five states:

- pending: committed before the first request goes to the terminal; it stays pending
  while the terminal has it, and when its answer never arrived (the card may be charged);
- approved or declined: the terminal's answer, committed before the answer is
  acknowledged to the terminal, with only the PCI-safe fields of it;
- settled: a document carries it, written in that document's own transaction
  (`settle_in_commit`), so one charge can never pay two documents;
- reversed: undone at the terminal.

Refunds and reversals paid back to a card are attempts too (`kind`), settled by the refund
or void document that records them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import msgspec
from peewee import DatabaseError, SqliteDatabase

from appliance.core.cart import Cart
from appliance.core.payment import Outcome, PaymentRequest, PaymentResult
from appliance.core.sale import Sale
from appliance.errors import DocumentError, DomainError
from appliance.store.database import notice_fault
from appliance.store.journal import append_in_transaction
from appliance.store.storage_faults import database_folder, store_error

log = logging.getLogger(__name__)

AttemptKind = Literal["payment", "refund", "reversal"]
# Not final: the terminal has it or nobody knows (pending), or it charged and no
# document carries it yet (approved).
OPEN_STATES = ("pending", "approved")
_OPEN = "('pending', 'approved')"
_ANSWERED = {"approved": "approved", "declined": "declined", "cancelled": "declined"}

_OUTCOMES: dict[str, Outcome] = {
    "approved": "approved",
    "settled": "approved",
    "declined": "declined",
}

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Cart)

_COLUMNS = (
    "reference, kind, amount, currency, state, original_reference, terminal_reference,"
    " card_mask, card_brand, auth_code, terminal_id, trace_number, receipt_number,"
    " result_code, offline, submitted_utc, message, cart, sale_id, started_utc, updated_utc"
)
_INSERT = (
    "INSERT INTO payment_journal (reference, kind, amount, currency, state, original_reference,"
    " cart, started_utc, updated_utc) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)"
)
# An answer lands only on a pending attempt: one already decided is never reopened.
_ANSWER = (
    "UPDATE payment_journal SET state = ?, terminal_reference = ?, card_mask = ?,"
    " card_brand = ?, auth_code = ?, terminal_id = ?, trace_number = ?, receipt_number = ?,"
    " result_code = ?, offline = ?, message = ?, updated_utc = ?"
    " WHERE reference = ? AND state = 'pending'"
)
_SETTLE = (
    "UPDATE payment_journal SET state = 'settled', sale_id = ?, updated_utc = ? WHERE reference = ?"
)


@dataclass(frozen=True, slots=True)
class PaymentAttempt:
    """One card attempt as the journal holds it: PCI-safe fields only."""

    reference: str  # the merchant reference: ours, unique per attempt
    kind: AttemptKind
    amount: int
    currency: str
    state: str  # pending, approved, declined, settled, reversed
    original_reference: str  # a refund's or reversal's payment
    terminal_reference: str
    card_mask: str
    card_brand: str
    auth_code: str
    terminal_id: str
    trace_number: str
    receipt_number: str
    result_code: int | None
    offline: bool
    submitted_at: datetime | None  # an offline approval the terminal has since submitted
    message: str
    cart: Cart | None  # what a payment was for, to sell it after a restart
    sale_id: str | None
    started_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        """True while no document carries it and it is not declined or reversed."""
        return self.state in OPEN_STATES

    def request(self) -> PaymentRequest:
        """The request the terminal was sent."""
        return PaymentRequest(self.amount, self.currency, self.reference)

    def result(self) -> PaymentResult:
        """What the terminal said, as far as it is known."""
        outcome = _OUTCOMES.get(self.state, "unknown")
        return PaymentResult(
            outcome,
            self.reference,
            self.terminal_reference,
            self.card_mask,
            self.message,
            card_brand=self.card_brand,
            auth_code=self.auth_code,
            terminal_id=self.terminal_id,
            trace_number=self.trace_number,
            receipt_number=self.receipt_number,
            result_code=self.result_code,
            amount=self.amount,
            offline=self.offline,
        )


@dataclass(frozen=True, slots=True)
class OfflineUsage:
    """Offline approvals the terminal has not submitted yet: how many, how much, how old."""

    count: int
    amount: int
    oldest: datetime | None


class PaymentAttempts:
    """Reads and writes the journal; every method is one transaction, safe from any thread."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def begin(
        self,
        request: PaymentRequest,
        cart: Cart | None,
        *,
        kind: AttemptKind = "payment",
        original: str = "",
    ) -> None:
        """Commit an attempt as pending before the terminal hears of it; StoreError if not.

        Committed without waiting for the disk (one fsync less on the payment path): it
        survives a crash of the process at once, and a power cut from the moment the
        terminal's answer is journalled, whose fsync writes the WAL up to here too. An
        approval is acknowledged only after that, and a terminal whose approval was never
        acknowledged reverses it itself (PA00P015 2.2.6): no charge can stand on a pending
        row a power cut took.
        """
        now = _now()
        body = _encoder.encode(cart) if cart is not None else None
        self._write(
            _INSERT,
            (
                request.merchant_reference,
                kind,
                request.amount,
                request.currency,
                original,
                body,
                now,
                now,
            ),
            durable=False,
            step=request.merchant_reference,
        )
        log.info("card %s %s of %d pending", kind, request.merchant_reference, request.amount)

    def answered(self, request: PaymentRequest, result: PaymentResult | None) -> None:
        """Commit the terminal's answer (None: it refused before charging anything).

        "unknown" leaves the attempt pending, with why: only the terminal can tell.
        """
        reference = request.merchant_reference
        if result is None or result.outcome == "unknown":
            message = result.message if result is not None else "refused before charging"
            state = "declined" if result is None else "pending"
            self._write(
                "UPDATE payment_journal SET state = ?, message = ?, updated_utc = ?"
                " WHERE reference = ? AND state = 'pending'",
                (state, message, _now(), reference),
                step=reference,
            )
            return
        changed = self._write(_ANSWER, (*_answer_fields(result), _now(), reference), step=reference)
        if not changed:
            log.warning(
                "card attempt %s answered %s after it was decided", reference, result.outcome
            )

    def begin_reversal(
        self, request: PaymentRequest, original: str, found: PaymentResult | None = None
    ) -> None:
        """Commit a pending reversal of `original`; with `found`, its charge first.

        One transaction: a charge found at the terminal is never on record without the
        reversal that marks it as one whose goods were not released.
        """
        now = _now()
        row = (request.merchant_reference, "reversal", request.amount, request.currency)
        try:
            with self._db.atomic("IMMEDIATE"):
                cursor = self._db.cursor()
                answer = (*_answer_fields(found), now, original) if found is not None else None
                if answer is not None and cursor.execute(_ANSWER, answer).rowcount:
                    chain_step(cursor, original)
                cursor.execute(_INSERT, (*row, original, None, now, now))
                chain_step(cursor, request.merchant_reference)
        except (DatabaseError, sqlite3.Error) as err:
            notice_fault(self._db, err)
            raise store_error(
                err, "the payment journal could not be written", database_folder(self._db)
            ) from err
        log.warning("card payment %s: reversal %s pending", original, request.merchant_reference)

    def reversal_of(self, original: str) -> PaymentAttempt | None:
        """The latest reversal attempt of a payment, if one was ever begun."""
        found = self._select("kind = 'reversal' AND original_reference = ?", (original,))
        return found[-1] if found else None

    def close(self, reference: str) -> None:
        """An approved reversal needs no document: it is settled as it is."""
        self._write(
            "UPDATE payment_journal SET state = 'settled', updated_utc = ?"
            " WHERE reference = ? AND state = 'approved'",
            (_now(), reference),
            step=reference,
        )

    def abandon_in_flight(self) -> list[str]:
        """At shutdown: the pending attempts (they stay pending, for recovery at start)."""
        rows = self._read("SELECT reference FROM payment_journal WHERE state = 'pending'", ())
        references = [str(row[0]) for row in rows]
        for reference in references:
            self._write(
                "UPDATE payment_journal SET message = ?, updated_utc = ? WHERE reference = ?",
                ("the appliance stopped before the terminal answered", _now(), reference),
            )
            log.warning("card attempt %s pending: the appliance is stopping", reference)
        return references

    def decide_paid(self, reference: str, who: str) -> PaymentAttempt:
        """Staff saw the charge on the terminal's own record: pending becomes approved."""
        return self._decide(reference, "approved", f"settled paid by {who}")

    def settle_not_paid(self, reference: str, who: str = "staff") -> PaymentAttempt:
        """No charge, as staff or the terminal showed: declined; DomainError if decided."""
        return self._decide(reference, "declined", f"settled not paid by {who}")

    def reversed(self, reference: str, message: str = "reversed at the terminal") -> None:
        """The terminal undid the charge: the attempt is final as reversed."""
        self._write(
            f"UPDATE payment_journal SET state = 'reversed', message = ?, updated_utc = ?"
            f" WHERE reference = ? AND state IN {_OPEN}",
            (message, _now(), reference),
            step=reference,
        )
        log.warning("card attempt %s reversed", reference)

    def get(self, reference: str) -> PaymentAttempt | None:
        """One attempt by its merchant reference."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM payment_journal WHERE reference = ?", (reference,)
        )
        return _attempt(rows[0]) if rows else None

    def open_attempts(self) -> list[PaymentAttempt]:
        """Attempts not final yet (pending or approved without a document), oldest first."""
        return self._select(f"state IN {_OPEN}")

    def pending(self) -> list[PaymentAttempt]:
        """Attempts whose outcome only the terminal can tell, oldest first."""
        return self._select(f"state IN {_OPEN} AND state = 'pending'")

    def knows_receipt(self, terminal_id: str, receipt_number: str) -> bool:
        """True when an answer with this receipt number of this terminal is recorded."""
        rows = self._read(
            "SELECT 1 FROM payment_journal WHERE receipt_number <> ''"
            " AND terminal_id = ? AND receipt_number = ? LIMIT 1",
            (terminal_id, receipt_number),
        )
        return bool(rows)

    def offline_usage(self) -> OfflineUsage:
        """Offline approvals not yet submitted by the terminal (its End-of-Day submits them)."""
        rows = self._read(
            "SELECT count(*), coalesce(sum(amount), 0), min(started_utc) FROM payment_journal"
            " WHERE offline = 1 AND submitted_utc IS NULL AND kind = 'payment'"
            " AND state IN ('approved', 'settled')",
            (),
        )
        count, amount, oldest = rows[0]
        return OfflineUsage(
            int(str(count)),
            int(str(amount)),
            datetime.fromisoformat(str(oldest)) if oldest is not None else None,
        )

    def submitted_offline(self) -> int:
        """After an End-of-Day: the offline approvals are submitted; how many."""
        return self._write(
            "UPDATE payment_journal SET submitted_utc = ? WHERE offline = 1"
            " AND submitted_utc IS NULL",
            (_now(),),
        )

    def _decide(self, reference: str, state: str, message: str) -> PaymentAttempt:
        changed = self._write(
            "UPDATE payment_journal SET state = ?, message = ?, updated_utc = ?"
            " WHERE reference = ? AND state = 'pending'",
            (state, message, _now(), reference),
            step=reference,
        )
        attempt = self.get(reference)
        if attempt is None:
            raise DomainError(f"no card attempt {reference}")
        if not changed:
            raise DomainError(f"card attempt {reference} is already {attempt.state}")
        log.warning("card attempt %s %s", reference, message)
        return attempt

    def _select(self, where: str, params: tuple[object, ...] = ()) -> list[PaymentAttempt]:
        rows = self._read(
            f"SELECT {_COLUMNS} FROM payment_journal WHERE {where} ORDER BY started_utc, reference",
            params,
        )
        return [_attempt(row) for row in rows]

    def _write(
        self, sql: str, params: tuple[object, ...], *, durable: bool = True, step: str = ""
    ) -> int:
        """Run one statement in its own transaction; a changed attempt `step` is chained too."""
        # On the calling thread's own connection, as plain statements: a payment waits for
        # these, so they carry nothing but the write itself.
        try:
            connection = self._db.connection()
            if not durable:  # this connection only, for this one commit
                connection.execute("PRAGMA synchronous = NORMAL")
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    changed = connection.execute(sql, params).rowcount
                    if step and changed:
                        chain_step(connection.cursor(), step)
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:  # SQLite rolls back by itself on a full disk
                        connection.execute("ROLLBACK")
                    raise
            finally:
                if not durable:
                    connection.execute("PRAGMA synchronous = FULL")
        except (DatabaseError, sqlite3.Error) as err:
            notice_fault(self._db, err)
            raise store_error(
                err, "the payment journal could not be written", database_folder(self._db)
            ) from err
        return int(changed)

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            return list(self._db.execute_sql(sql, params).fetchall())
        except (DatabaseError, sqlite3.Error) as err:
            notice_fault(self._db, err)
            raise store_error(err, "the payment journal could not be read") from err


def settle_in_commit(cursor: sqlite3.Cursor, sale: Sale, moment: str) -> None:
    """Inside a document's commit: its card tenders settle their attempts, or it is refused.

    A sale's card tender must name an approved payment: one declined, reversed, still in
    doubt or paying another sale would make one charge two sales, so DocumentError rolls
    the commit back. A refund or void settles the refund or reversal attempts it names.
    A tender no attempt knows (none was journalled) passes unchanged.
    """
    for reference in _card_references(sale):
        found = cursor.execute(
            "SELECT reference, kind, state, sale_id FROM payment_journal WHERE reference = ?",
            (reference,),
        ).fetchone()
        if found is None:
            continue
        attempt, kind, state, sale_id = found
        if sale.kind != "sale" and kind == "payment":
            continue  # a refund recorded against the payment it pays back
        if (sale.kind == "sale") != (kind == "payment"):
            raise DocumentError(f"card {kind} {attempt} cannot pay a {sale.kind}")
        if state != "approved":
            already = f" by {sale_id}" if sale_id else ""
            raise DocumentError(f"card {kind} {attempt} is {state}{already}")
        cursor.execute(_SETTLE, (sale.id, moment, attempt))
        chain_step(cursor, str(attempt))


_STEP = (
    "SELECT reference, kind, state, amount, currency, original_reference, terminal_reference,"
    " result_code, offline, sale_id, updated_utc FROM payment_journal WHERE reference = ?"
)
_STEP_FIELDS = (
    "reference",
    "attempt_kind",
    "state",
    "amount",
    "currency",
    "original_reference",
    "terminal_reference",
    "result_code",
    "offline",
    "sale_id",
)


def chain_step(cursor: sqlite3.Cursor, reference: str) -> None:
    """Inside the step's transaction: the attempt as it now stands joins the fiscal journal.

    Only fields the terminal cannot fill with free text: the masked card and the terminal's
    message stay out, since nothing can ever be removed from the chain (a message that
    carried a card number in clear must stay erasable).
    """
    row = cursor.execute(_STEP, (reference,)).fetchone()
    if row is None:
        return
    event = dict(zip(_STEP_FIELDS, row[:-1], strict=True))
    append_in_transaction(cursor, "payment", event, str(row[-1]))


def _answer_fields(result: PaymentResult) -> tuple[object, ...]:
    """The columns of _ANSWER up to the time, from a terminal's answer."""
    return (
        _ANSWERED.get(result.outcome, "pending"),
        result.terminal_reference,
        result.masked_card,
        result.card_brand,
        result.auth_code,
        result.terminal_id,
        result.trace_number,
        result.receipt_number,
        result.result_code,
        int(result.offline),
        result.message,
    )


def _card_references(sale: Sale) -> Iterable[str]:
    return (t.reference for t in sale.tenders if t.kind == "card" and t.reference)


def _attempt(row: tuple[object, ...]) -> PaymentAttempt:
    (reference, kind, amount, currency, state, original, terminal_ref, mask, brand) = row[:9]
    (auth, terminal_id, trace, receipt, code, offline, submitted, message, cart) = row[9:18]
    sale_id, started, updated = row[18:21]
    return PaymentAttempt(
        reference=str(reference),
        kind=str(kind),  # type: ignore[arg-type]
        amount=int(str(amount)),
        currency=str(currency),
        state=str(state),
        original_reference=str(original),
        terminal_reference=str(terminal_ref),
        card_mask=str(mask),
        card_brand=str(brand),
        auth_code=str(auth),
        terminal_id=str(terminal_id),
        trace_number=str(trace),
        receipt_number=str(receipt),
        result_code=int(str(code)) if code is not None else None,
        offline=bool(offline),
        submitted_at=datetime.fromisoformat(str(submitted)) if submitted is not None else None,
        message=str(message),
        cart=_decoder.decode(bytes(cart)) if isinstance(cart, bytes | bytearray) else None,
        sale_id=str(sale_id) if sale_id is not None else None,
        started_at=datetime.fromisoformat(str(started)),
        updated_at=datetime.fromisoformat(str(updated)),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()
