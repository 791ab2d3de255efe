"""The table that finds a sale by its e-receipt token: only the token's hash is kept."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from peewee import CharField, Database, SchemaManager

from appliance.core.ids import receipt_token_time
from hub.models import HubModel, Sale

# What a stored sale document carries instead of its token: the hash, which opens nothing.
REDACTED = "sha256:"


class ReceiptToken(HubModel):
    """One sale's e-receipt link: the SHA-256 of its token, and the sale it opens."""

    # A hash, not the token: a copy of the database does not hand out working links, and a
    # lookup by an indexed hash leaks nothing through its timing about other tokens.
    token_hash = CharField(primary_key=True, max_length=64)
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
            ReceiptToken.insert_many(rows).on_conflict(action="NOTHING").execute(db)
