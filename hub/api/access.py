"""Access to the integration API: tokens stored hashed, with a scope and an optional store.

A token reads `hub_<id>_<secret>`: the id finds the row, the secret is checked against its
SHA-256 (the secret is 32 random bytes, so a fast hash is enough; nothing to brute-force).
Scopes nest: `admin` may do what `write` may, and `write` what `read` may. A token limited
to a store sees and changes that store only; anything of another store is "not found",
so not even its existence leaks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast, get_args

from peewee import CharField, Database, DateTimeField, DoesNotExist

from hub.models import HubModel

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
TOKEN_PREFIX = "hub_"


class ApiToken(HubModel):
    """One API token: its hash, scope and store; the secret itself is never stored."""

    id = CharField(primary_key=True, max_length=32)
    name = CharField(max_length=128)
    secret_sha256 = CharField(max_length=64)
    scope = CharField(max_length=8)
    store = CharField(max_length=64, null=True)  # None: every store
    created_at = DateTimeField()
    revoked_at = DateTimeField(null=True)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's id, scope and store (None: every store)."""

    token_id: str
    scope: Scope
    store: str | None = None

    def may(self, needed: Scope) -> bool:
        """Whether this scope includes `needed`."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    def sees_store(self, store: str | None) -> bool:
        """Whether this caller may see or change what belongs to `store`."""
        return self.store is None or store == self.store


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: `value` is shown once and never again."""

    id: str
    value: str
    scope: Scope
    store: str | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(db: Database, name: str, scope: Scope, store: str | None = None) -> IssuedToken:
    """Create a token; only its hash is kept."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    ApiToken.insert(
        id=token_id,
        name=name,
        secret_sha256=_digest(secret),
        scope=scope,
        store=store or None,
        created_at=datetime.now(UTC).replace(tzinfo=None),
    ).execute(db)
    return IssuedToken(token_id, f"{TOKEN_PREFIX}{token_id}_{secret}", scope, store or None)


def authenticate(db: Database, value: str) -> Principal | None:
    """The principal of a presented token, or None when it is unknown, malformed or revoked."""
    if not value.startswith(TOKEN_PREFIX):
        return None
    token_id, _, secret = value[len(TOKEN_PREFIX) :].partition("_")
    if not token_id or not secret:
        return None
    try:
        row = ApiToken.select().where(ApiToken.id == token_id).get(db)
    except DoesNotExist:
        return None
    if row.revoked_at is not None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        return None
    return Principal(token_id=row.id, scope=cast(Scope, row.scope), store=row.store)


def revoke_token(db: Database, token_id: str) -> bool:
    """Revoke a token; False when there is no such (unrevoked) token."""
    now = datetime.now(UTC).replace(tzinfo=None)
    query = ApiToken.update(revoked_at=now).where(
        (ApiToken.id == token_id) & ApiToken.revoked_at.is_null()
    )
    return bool(query.execute(db))


def list_tokens(db: Database) -> list[ApiToken]:
    """Every token, newest first (hashes only)."""
    return list(ApiToken.select().order_by(ApiToken.created_at.desc()).execute(db))
