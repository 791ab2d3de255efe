"""The table that finds a sale by its e-receipt token: only the token's hash is kept."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from peewee import CharField, Database, SchemaManager

from appliance.core.ids import receipt_token_time
from hub.models import HubModel, Sale

log = logging.getLogger(__name__)

# What a stored sale document carries instead of its token: the hash, which opens nothing.
REDACTED = "sha256:"


class ReceiptToken(HubModel):
    """One sale's e-receipt link: the SHA-256 of its token, and the sale it opens."""

    # A hash, not the token: a copy of the database does not hand out working links, and a
    # lookup by an indexed hash leaks nothing through its timing about other tokens.
    token_hash = CharField(primary_key=True, max_length=64)
    # A token two sales claimed keeps a row with device and sale_id "": it opens neither,
    # and no later sale can claim it.
    device = CharField(max_length=128)
    sale_id = CharField(max_length=64)


def token_hash(token: str) -> str:
    """The hex SHA-256 of a token, as the table keeps it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def redact_token(text: str, token: str) -> str:
    """A document's text with each copy of its well-formed token replaced by "sha256:<hash>"."""
    # A well-formed token is 30 URL-safe characters, 128 bits of them random, which JSON
    # never escapes: wherever the document holds it, it holds it as this exact text.
    if receipt_token_time(token) is None:
        return text
    return text.replace(token, REDACTED + token_hash(token))


def void_contested(db: Database, rows: Sequence[Mapping[str, Any]]) -> int:
    """After an insert that skipped conflicts: each token held for another sale opens none.

    Returns how many links were voided. A device that saw a customer's QR code could
    otherwise send the token with a sale of its own first and take the link over.
    """
    wanted: dict[str, tuple[str, str]] = {}
    contested: set[str] = set()
    for row in rows:
        claim = (str(row["device"]), str(row["sale_id"]))
        if wanted.setdefault(row["token_hash"], claim) != claim:
            contested.add(row["token_hash"])  # twice in these rows
    query: Any = (
        ReceiptToken.select(ReceiptToken.token_hash, ReceiptToken.device, ReceiptToken.sale_id)
        .where(ReceiptToken.token_hash.in_(list(wanted)))
        .tuples()
    )
    for hashed, device, sale_id in query.execute(db):
        if (device, sale_id) != wanted[hashed] or hashed in contested:
            contested.add(hashed)
            log.warning(
                "an e-receipt token of sale %s of %s is claimed by sale %s of %s: it opens neither",
                sale_id or "(voided)",
                device or "-",
                wanted[hashed][1],
                wanted[hashed][0],
            )
    if contested:
        ReceiptToken.update(device="", sale_id="").where(
            ReceiptToken.token_hash.in_(sorted(contested))
        ).execute(db)
    return len(contested)


class _Token(msgspec.Struct):
    """Only the e-receipt token of a stored document."""

    receipt_token: str = ""


_token_decoder = msgspec.json.Decoder(_Token)
_BACKFILL_CHUNK = 500


def create_receipt_tables(db: Database) -> None:
    """Migration 11: the e-receipt token table, with the tokens of the sales already stored."""
    SchemaManager(ReceiptToken, database=db).create_all(safe=True)
    # Kiosks may have sent tokens before their hub knew of them: those links work too, and
    # those documents keep only the hash from now on, as ingest keeps it.
    last = 0
    while True:
        query: Any = (
            Sale.select(Sale.id, Sale.device, Sale.sale_id, Sale.document)
            .where((Sale.id > last) & Sale.document.contains('"receipt_token"'))
            .order_by(Sale.id)
            .limit(_BACKFILL_CHUNK)
            .tuples()
        )
        found = list(query.execute(db))
        if not found:
            return
        rows = []
        for row_id, device, sale_id, text in found:
            last = int(row_id)
            try:
                token = _token_decoder.decode(str(text)).receipt_token
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                continue
            if receipt_token_time(token) is None:
                continue
            rows.append({"token_hash": token_hash(token), "device": device, "sale_id": sale_id})
            redacted = redact_token(str(text), token)
            Sale.update(document=redacted).where(Sale.id == row_id).execute(db)
        if rows:
            query = ReceiptToken.insert_many(rows).on_conflict(action="NOTHING").as_rowcount()
            if int(query.execute(db)) < len(rows):
                void_contested(db, rows)
