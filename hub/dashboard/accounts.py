"""Dashboard admins: passwords kept as scrypt hashes, and failed logins throttled.

scrypt with n = 2**15, r = 8, p = 1 takes 32 MiB and about a tenth of a second per check:
slow for whoever guesses offline from a copied database, and throttling (below) slows
guessing online. Each admin has a random salt; hashes are compared in constant time, and
an unknown name costs the same hash as a known one, so the time taken tells nothing.

Throttling: after MAX_FAILURES failed logins for one name from one address,
MAX_FAILURES_PER_ADDRESS from one address, or MAX_FAILURES_PER_NAME for one name from
anywhere, within FAILURE_WINDOW, such logins are refused, even a right one, until the
oldest failure leaves the window. The per-name limit is much higher, so a stranger who
knows a name cannot lock its admin out with a handful of requests. The failures live in
the hub database, so every web process counts them; an attempt is counted before its
hash is computed, and at most HASHING_AT_ONCE hashes run at once in a process (each takes
32 MiB).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from peewee import Database, fn

from appliance.errors import ApplianceError
from hub.dashboard.models import DashboardAdmin, DashboardSession, LoginFailure
from hub.db import is_sqlite

DEFAULT_COST = 15  # scrypt n = 2**15
BLOCK_SIZE = 8  # scrypt r
_MAX_MEMORY = 256 * 1024 * 1024  # OpenSSL refuses scrypt above its 32 MiB default otherwise
MIN_PASSWORD = 12  # characters
MAX_PASSWORD = 1024  # characters: a longer one is someone testing the hash's cost
MAX_NAME = 64
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5  # for one name from one address
MAX_FAILURES_PER_ADDRESS = 20
MAX_FAILURES_PER_NAME = 50  # from anywhere
HASHING_AT_ONCE = 2
_HASHING = threading.BoundedSemaphore(HASHING_AT_ONCE)
_LOGIN_LOCK = 0x6C6F67696E  # PostgreSQL advisory lock key: counting login attempts
_DUMMY_SALT = b"\0" * 16  # hashed against when the name is unknown: the same cost


class AdminError(ApplianceError):
    """An admin cannot be added or changed as asked (a name taken, a password too short)."""


def _hash(password: str, salt: bytes, cost: int, block_size: int) -> bytes:
    with _HASHING:  # bounds the memory parallel logins take, and the cores they hold
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=2**cost,
            r=block_size,
            p=1,
            maxmem=_MAX_MEMORY,
            dklen=32,
        )


def check_password_rules(name: str, password: str) -> None:
    """AdminError unless the name and password are acceptable."""
    if not name or len(name) > MAX_NAME or not name.isprintable() or name != name.strip():
        raise AdminError(f"an admin name is 1 to {MAX_NAME} printable characters, no outer spaces")
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AdminError(f"the password may have at most {MAX_PASSWORD} characters")


def add_admin(
    db: Database,
    name: str,
    password: str,
    *,
    now: datetime,
    replace: bool = False,
    cost: int = DEFAULT_COST,
) -> None:
    """Create an admin (or, with `replace`, set a new password and end their sessions)."""
    check_password_rules(name, password)
    salt = secrets.token_bytes(16)
    fields = {
        "salt": salt,
        "password_hash": _hash(password, salt, cost, BLOCK_SIZE),
        "cost": cost,
        "block_size": BLOCK_SIZE,
        "created_at": now,
    }
    with db.atomic():
        exists = DashboardAdmin.select().where(DashboardAdmin.name == name).exists(db)
        if exists and not replace:
            raise AdminError(f"admin {name!r} exists; add --replace to set a new password")
        if exists:
            DashboardAdmin.update(fields).where(DashboardAdmin.name == name).execute(db)
            DashboardSession.delete().where(DashboardSession.admin == name).execute(db)
        else:
            DashboardAdmin.insert(name=name, **fields).execute(db)


def remove_admin(db: Database, name: str) -> bool:
    """Delete an admin and end their sessions at once; False when there was none."""
    with db.atomic():
        DashboardSession.delete().where(DashboardSession.admin == name).execute(db)
        return bool(DashboardAdmin.delete().where(DashboardAdmin.name == name).execute(db))


@dataclass(frozen=True, slots=True)
class AdminView:
    """An admin as `admin list` shows it."""

    name: str
    created_at: datetime
    sessions: int  # logged-in browsers, expired ones included until they are swept


def list_admins(db: Database) -> list[AdminView]:
    """Every admin, by name."""
    sessions = dict(
        DashboardSession.select(DashboardSession.admin, fn.COUNT(DashboardSession.id_sha256))
        .group_by(DashboardSession.admin)
        .tuples()
        .execute(db)
    )
    rows = DashboardAdmin.select(DashboardAdmin.name, DashboardAdmin.created_at)
    return [
        AdminView(str(name), created, int(sessions.get(name, 0)))
        for name, created in rows.order_by(DashboardAdmin.name).tuples().execute(db)
    ]


Outcome = Literal["ok", "wrong", "throttled"]


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A login attempt's outcome; `retry_after` (seconds) when throttled."""

    outcome: Outcome
    retry_after: int = 0


def attempt_login(
    db: Database, name: str, password: str, *, address: str, now: datetime
) -> LoginResult:
    """Check a name and password, counting failures; a throttled login is not even checked."""
    name, address = name[:MAX_NAME], address[:64]
    attempt = _count_attempt(db, name, address, now)
    if isinstance(attempt, LoginResult):
        return attempt
    admin = DashboardAdmin.select().where(DashboardAdmin.name == name).first(db)
    if admin is None:
        _hash(password[:MAX_PASSWORD], _DUMMY_SALT, DEFAULT_COST, BLOCK_SIZE)
        right = False
    else:
        tried = _hash(password[:MAX_PASSWORD], bytes(admin.salt), admin.cost, admin.block_size)
        right = hmac.compare_digest(tried, bytes(admin.password_hash))
    if right and len(password) <= MAX_PASSWORD:
        # This browser's own earlier typos are forgiven; others' guesses at the name stay.
        mine = (LoginFailure.name == name) & (LoginFailure.address == address)
        LoginFailure.delete().where(mine | (LoginFailure.id == attempt)).execute(db)
        return LoginResult("ok")
    return LoginResult("wrong")


def _count_attempt(db: Database, name: str, address: str, now: datetime) -> str | LoginResult:
    """Count this attempt as a failure before its password is checked: the row's id.

    Counting first, under one lock, is what stops parallel guesses: each sees the ones
    before it even while their hashes are still running. A right password deletes the row.
    """
    with db.atomic():
        if not is_sqlite(db):  # SQLite's BEGIN IMMEDIATE already serialises writers
            db.execute_sql(f"SELECT pg_advisory_xact_lock({db.param})", (_LOGIN_LOCK,))
        wait = _throttled_for(db, name, address, now)
        if wait:
            return LoginResult("throttled", wait)
        LoginFailure.delete().where(LoginFailure.at < now - FAILURE_WINDOW).execute(db)
        attempt = secrets.token_hex(8)
        LoginFailure.insert(id=attempt, name=name, address=address, at=now).execute(db)
    return attempt


def _throttled_for(db: Database, name: str, address: str, now: datetime) -> int:
    """Seconds until a login for `name` from `address` is checked again (0: now)."""
    since = now - FAILURE_WINDOW
    waits = [0]
    for where, limit in (
        ((LoginFailure.name == name) & (LoginFailure.address == address), MAX_FAILURES),
        (LoginFailure.address == address, MAX_FAILURES_PER_ADDRESS),
        (LoginFailure.name == name, MAX_FAILURES_PER_NAME),
    ):
        recent = (
            LoginFailure.select(LoginFailure.at)
            .where(where & (LoginFailure.at >= since))
            .order_by(LoginFailure.at.desc())
            .limit(limit)
            .tuples()
        )
        times = [at for (at,) in recent.execute(db)]
        if len(times) >= limit:
            # Free again when the limit-th newest failure leaves the window.
            waits.append(int((times[-1] + FAILURE_WINDOW - now).total_seconds()) + 1)
    return max(waits)
