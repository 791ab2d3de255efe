"""Staff members, their roles, and PINs kept only as salted slow hashes.

A PIN is short, so a fast hash of it falls to a brute force in seconds; scrypt makes each
guess cost memory and time (about 30 ms here), and a per-PIN salt stops precomputed tables.
Verifying is slow on purpose: call it off the main thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from appliance.errors import StaffError

Role = Literal["cashier", "supervisor"]
ROLES: tuple[Role, ...] = ("cashier", "supervisor")

PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 12
# scrypt cost: n=2**14, r=8 needs 16 MiB per check; the format records them for later change.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
SCHEME = "scrypt"


@dataclass(frozen=True, slots=True)
class StaffMember:
    """Someone who may log in to a till."""

    staff_id: str
    name: str
    role: Role

    @property
    def is_supervisor(self) -> bool:
        """Supervisors approve what cashiers may not do alone."""
        return self.role == "supervisor"


def check_pin(pin: str) -> None:
    """Refuse a PIN that is not 4 to 12 digits, or all one digit."""
    if not (PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS) or not (pin.isascii() and pin.isdigit()):
        raise StaffError(f"a PIN is {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits")
    if len(set(pin)) == 1:
        raise StaffError("a PIN of one repeated digit is too easy to guess")


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """The stored form of a PIN: "scrypt$n$r$p$salt$hash" (base64); slow on purpose."""
    check_pin(pin)
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join((SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)))


def verify_pin(pin: str, stored: str) -> bool:
    """True when `pin` matches the stored hash; constant-time compare; slow on purpose."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(pin, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False  # a damaged hash never matches
    return hmac.compare_digest(actual, expected)


def badge_key(uid: str) -> str:
    """How a badge's UID is stored: a hash, so the table does not list card numbers."""
    normalised = uid.strip().upper()
    if not normalised or any(ch not in "0123456789ABCDEF" for ch in normalised):
        raise StaffError(f"a badge UID is hexadecimal, not {uid!r}")
    return hashlib.sha256(normalised.encode("ascii")).hexdigest()


def may_discount(member: StaffMember, percent_off: int, cashier_limit: int) -> bool:
    """A cashier may give up to `cashier_limit` percent off a cart; a supervisor any amount."""
    return member.is_supervisor or percent_off <= cashier_limit


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=HASH_BYTES
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
