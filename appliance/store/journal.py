"""The fiscal journal in SQLite: appended inside each event's own transaction, verified, exported.

Every writer of a fiscal event calls `append_in_transaction` with the cursor of the
transaction that writes the event, so the event and its entry exist together or not at
all. SQLite's write lock (BEGIN IMMEDIATE) serialises appends: the head read here is
the head the entry is written after.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from peewee import DatabaseError, SqliteDatabase

from appliance.core.journal import (
    ChainBreak,
    JournalEntry,
    body_digest,
    canonical,
    entry_after,
    verify_chain,
)
from appliance.core.sale import Sale
from appliance.store.database import notice_fault
from appliance.store.storage_faults import database_folder, store_error

ACKED_KEY = "journal_acked_upto"  # meta: the highest entry the hub has confirmed it holds

_HEAD = "SELECT number, kind, at, body, prev_hash, hash FROM journal ORDER BY number DESC LIMIT 1"
# What the next entry links to: read for every sale, so only the two columns it needs.
_LINK = "SELECT number, hash FROM journal ORDER BY number DESC LIMIT 1"
_INSERT = "INSERT INTO journal (number, kind, at, body, prev_hash, hash) VALUES (?,?,?,?,?,?)"
_SELECT = "SELECT number, kind, at, body, prev_hash, hash FROM journal"
_DOCUMENTS = "SELECT id, body FROM document ORDER BY sequence"
DOCUMENT_KINDS = ("sale", "refund", "void")
_ACKED = "SELECT value FROM meta WHERE key = ?"


def utc_now_text() -> str:
    """Now as the UTC ISO text entries carry."""
    return datetime.now(UTC).isoformat()


def _bytes(value: Any) -> bytes:
    """A stored body as bytes: a hand edit with the sqlite3 tool may leave it as text."""
    return value.encode() if isinstance(value, str) else bytes(value)


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    number, kind, at, body, prev_hash, own_hash = row
    return JournalEntry(
        int(number), str(kind), str(at), _bytes(body), str(prev_hash), str(own_hash)
    )


def append_in_transaction(
    cursor: sqlite3.Cursor, kind: str, event: Mapping[str, Any], at: str
) -> JournalEntry:
    """Chain one event inside the caller's open write transaction; returns its entry."""
    found = cursor.execute(_LINK).fetchone()
    link = (int(found[0]), str(found[1])) if found else None
    entry = entry_after(link, kind, at, canonical(event))
    cursor.execute(
        _INSERT, (entry.number, entry.kind, entry.at, entry.body, entry.prev_hash, entry.hash)
    )
    return entry


def document_event(sale: Sale, body: bytes) -> dict[str, Any]:
    """A document's journal body: what it is and the digest of its stored JSON."""
    return {
        "document_id": sale.id,
        "kind": sale.kind,
        "sequence": sale.sequence,
        "receipt_number": sale.receipt_number,
        "total": sale.total,
        "currency": sale.currency,
        "sha256": body_digest(body),
    }


@dataclass(frozen=True, slots=True)
class JournalCheck:
    """What `verify` found: the chain's length and head, and the first problem if any."""

    entries: int
    head_number: int
    head_hash: str
    problem: ChainBreak | None

    @property
    def ok(self) -> bool:
        """True when the chain and every document it covers are intact."""
        return self.problem is None


def _noting_documents(
    entries: Iterator[JournalEntry], chained: dict[str, tuple[int, str]]
) -> Iterator[JournalEntry]:
    """The entries as they stream by, noting each document entry's number and digest."""
    for entry in entries:
        if entry.kind in DOCUMENT_KINDS:
            event = entry.event()
            chained[str(event.get("document_id"))] = (entry.number, str(event.get("sha256")))
        yield entry


class FiscalJournal:
    """Reads, verifies and exports the journal; `append` is for events with no row of their own."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def append(self, kind: str, event: Mapping[str, Any], at: str | None = None) -> JournalEntry:
        """Chain one event in its own durable transaction."""
        try:
            with self._db.atomic("IMMEDIATE"):
                return append_in_transaction(self._db.cursor(), kind, event, at or utc_now_text())
        except (DatabaseError, sqlite3.Error) as err:
            notice_fault(self._db, err)
            raise store_error(
                err, "the fiscal journal could not be written", database_folder(self._db)
            ) from err

    def head(self) -> JournalEntry | None:
        """The newest entry."""
        found = self._db.execute_sql(_HEAD).fetchone()
        return _entry(found) if found else None

    def entries(self, after: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Entries with a number above `after`, in order; at most `limit`."""
        sql = f"{_SELECT} WHERE number > ? ORDER BY number"
        params: tuple[int, ...] = (after,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (after, limit)
        return [_entry(row) for row in self._db.execute_sql(sql, params)]

    def _all(self) -> Iterator[JournalEntry]:
        for row in self._db.execute_sql(f"{_SELECT} ORDER BY number"):
            yield _entry(row)

    def acked_upto(self) -> int:
        """The highest entry the hub confirmed it holds (0 before the first)."""
        found = self._db.execute_sql(_ACKED, (ACKED_KEY,)).fetchone()
        try:
            return int(found[0]) if found else 0
        except ValueError:
            return 0

    def verify(self) -> JournalCheck:
        """Prove the chain, then that every document is chained with the digest of its body.

        Streams the entries (a long-lived till's journal is never held in memory whole);
        a cut-off tail is found too: below the number the hub confirmed, and where a
        document has no entry.
        """
        head = self.head()
        head_number = head.number if head else 0
        count = int(self._db.execute_sql("SELECT COUNT(*) FROM journal").fetchone()[0])
        chained: dict[str, tuple[int, str]] = {}  # document id -> (entry number, digest)
        problem = verify_chain(_noting_documents(self._all(), chained))
        problem = problem or self._check_documents(chained, head_number)
        acked = self.acked_upto()
        if problem is None and head_number < acked:
            problem = ChainBreak(
                head_number + 1,
                f"the journal ends before entry {acked}, which the hub confirmed it holds",
            )
        return JournalCheck(count, head_number, head.hash if head else "", problem)

    def _check_documents(
        self, chained: dict[str, tuple[int, str]], head_number: int
    ) -> ChainBreak | None:
        """Every stored document has an entry whose digest matches its body."""
        for document_id, body in self._db.execute_sql(_DOCUMENTS):
            number, digest = chained.get(str(document_id), (0, ""))
            if not number:
                return ChainBreak(head_number + 1, f"document {document_id} has no journal entry")
            if digest != body_digest(_bytes(body)):
                changed = f"document {document_id} was changed after it was chained"
                return ChainBreak(number, changed)
        return None

    def export(self, out: IO[str]) -> JournalCheck:
        """Write every entry as JSON lines for an auditor, then a last line with the head hash."""
        check = self.verify()
        for entry in self._all():
            line = {
                "number": entry.number,
                "kind": entry.kind,
                "at": entry.at,
                "event": entry.event(),
                "body": entry.body.decode(errors="replace"),
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            }
            out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        head = {
            "head_number": check.head_number,
            "head_hash": check.head_hash,
            "entries": check.entries,
            "verified": check.ok,
            "problem": (
                {"number": check.problem.number, "reason": check.problem.reason}
                if check.problem
                else None
            ),
        }
        out.write(json.dumps({"head": head}, sort_keys=True) + "\n")
        return check

    def export_to(self, path: Path) -> JournalCheck:
        """`export` into a file."""
        with path.open("w", encoding="utf-8") as out:
            return self.export(out)
