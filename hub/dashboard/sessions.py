"""Server-side dashboard sessions: a random id in the cookie, its SHA-256 in the database.

A copied database therefore holds no usable session. Each session carries its own CSRF
token, which every form of the dashboard sends back in a hidden field. A session ends at
its expiry (set at login, not extended), at logout, or when its admin is removed or gets
a new password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Database

from hub.dashboard.models import DashboardAdmin, DashboardSession

SESSION_COOKIE = "hub_session"


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in admin."""

    admin: str
    csrf: str
    expires_at: datetime  # naive UTC

    def csrf_matches(self, token: str) -> bool:
        """Whether a form's token is this session's (compared in constant time)."""
        return hmac.compare_digest(token.encode("utf-8"), self.csrf.encode("utf-8"))


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def open_session(db: Database, admin: str, *, hours: float, now: datetime) -> tuple[str, Session]:
    """A new session for `admin`: the cookie value, and the session."""
    session_id = secrets.token_urlsafe(32)
    session = Session(admin, secrets.token_urlsafe(32), now + timedelta(hours=hours))
    with db.atomic():
        DashboardSession.delete().where(DashboardSession.expires_at <= now).execute(db)
        DashboardSession.insert(
            id_sha256=_digest(session_id),
            admin=admin,
            csrf=session.csrf,
            created_at=now,
            expires_at=session.expires_at,
        ).execute(db)
    return session_id, session


def session_for(db: Database, session_id: str, *, now: datetime) -> Session | None:
    """The live session a cookie names, or None (unknown, expired, or its admin removed)."""
    if not session_id or len(session_id) > 128:
        return None
    row = (
        DashboardSession.select(
            DashboardSession.admin, DashboardSession.csrf, DashboardSession.expires_at
        )
        .join(DashboardAdmin, on=(DashboardAdmin.name == DashboardSession.admin))
        .where(DashboardSession.id_sha256 == _digest(session_id))
        .tuples()
        .first(db)
    )
    if row is None or row[2] <= now:
        return None
    return Session(*row)


def close_session(db: Database, session_id: str) -> None:
    """Log out: the session is gone at once."""
    DashboardSession.delete().where(DashboardSession.id_sha256 == _digest(session_id)).execute(db)
