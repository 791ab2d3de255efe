"""The table that finds a sale by its e-receipt token: only the token's hash is kept."""

from __future__ import annotations

import hashlib

from peewee import CharField, Database, SchemaManager

from appliance.core.ids import receipt_token_time
from hub.models import HubModel

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


def create_receipt_tables(db: Database) -> None:
    """Migration 11: the e-receipt token table."""
    SchemaManager(ReceiptToken, database=db).create_all(safe=True)
