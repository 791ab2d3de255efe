"""The fiscal journal: every fiscal event as an entry of a SHA-256 hash chain.

Each entry carries a per-device gapless number, its kind, the moment (UTC ISO text), the
event's canonical bytes and the previous entry's hash. Its own hash covers all of them
(the body through its digest), so editing, deleting or re-ordering any entry breaks the
chain from that entry on. The first entry's previous hash is GENESIS.

A fiscal signing unit (the German TSE and its kind) signs an entry's hash; its signature
is kept beside the entry, never inside it, so adding one later changes no hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
HASH_DOMAIN = b"appliance-journal/1"  # changes only with a new entry layout

# What the chain records; the body of each is the event's whole content as a JSON object.
JOURNAL_KINDS = frozenset(
    {
        "sale",
        "refund",
        "void",
        "payment",
        "drawer",
        "shift_open",
        "cash_in",
        "cash_out",
        "shift_close",
        "x_report",
        "z_report",
    }
)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One link of the chain, exactly as stored and uploaded."""

    number: int
    kind: str
    at: str  # UTC ISO 8601
    body: bytes  # canonical JSON of the event
    prev_hash: str
    hash: str

    def event(self) -> dict[str, Any]:
        """The body as a dict ({} when it is not a JSON object: an entry edited by hand)."""
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first entry the chain does not prove, and why."""

    number: int
    reason: str


def canonical(event: Mapping[str, Any]) -> bytes:
    """The event's canonical bytes: UTF-8 JSON, keys sorted, no spaces (the same everywhere)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body_digest(body: bytes) -> str:
    """SHA-256 of the body, hex."""
    return hashlib.sha256(body).hexdigest()


def entry_hash(number: int, kind: str, at: str, body: bytes, prev_hash: str) -> str:
    """The entry's own hash over its number, kind, moment, body digest and previous hash."""
    fields = (HASH_DOMAIN, str(number).encode(), kind.encode(), at.encode())
    preimage = b"\x00".join((*fields, body_digest(body).encode(), prev_hash.encode()))
    return hashlib.sha256(preimage).hexdigest()


def next_entry(previous: JournalEntry | None, kind: str, at: str, body: bytes) -> JournalEntry:
    """The entry that follows `previous` (None: the first entry)."""
    link = (previous.number, previous.hash) if previous is not None else None
    return entry_after(link, kind, at, body)


def entry_after(link: tuple[int, str] | None, kind: str, at: str, body: bytes) -> JournalEntry:
    """The entry that follows the one numbered and hashed `link` (None: the first entry)."""
    if kind not in JOURNAL_KINDS:
        raise ValueError(f"unknown journal entry kind {kind!r}")
    number, prev_hash = (link[0] + 1, link[1]) if link is not None else (1, GENESIS)
    own_hash = entry_hash(number, kind, at, body, prev_hash)
    return JournalEntry(number, kind, at, body, prev_hash, own_hash)


def verify_chain(
    entries: Iterable[JournalEntry], *, after: JournalEntry | None = None
) -> ChainBreak | None:
    """The first entry that breaks the chain (gap, wrong link, wrong hash), or None.

    `after` is the entry the run continues from (None: the run starts at number 1).
    """
    expected_number = after.number + 1 if after is not None else 1
    prev_hash = after.hash if after is not None else GENESIS
    for entry in entries:
        if entry.number != expected_number:
            return ChainBreak(expected_number, f"entry {expected_number} is missing")
        if entry.prev_hash != prev_hash:
            return ChainBreak(
                entry.number, f"it does not link to entry {entry.number - 1}: one of them changed"
            )
        if entry.hash != entry_hash(entry.number, entry.kind, entry.at, entry.body, prev_hash):
            return ChainBreak(entry.number, "its content does not match its hash")
        expected_number += 1
        prev_hash = entry.hash
    return None
