"""Standard Webhooks signatures (https://www.standardwebhooks.com), both ends of them.

A message carries three headers: `webhook-id` (the event id, the same on every attempt,
so a receiver de-duplicates on it), `webhook-timestamp` (unix seconds of this attempt)
and `webhook-signature`: `v1,<base64 HMAC-SHA256>` over `"{id}.{timestamp}.{body}"`,
keyed with the bytes base64-encoded after `whsec_` in the endpoint's secret. Several
space-separated signatures may be sent (while a secret is rotated); one match suffices.

Only the standard library and the hub's exception base, so a receiver can copy `verify`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from appliance.errors import ApplianceError

SECRET_PREFIX = "whsec_"
TOLERANCE = 5 * 60  # seconds a timestamp may differ from the receiver's clock (replays)


class WebhookVerificationError(ApplianceError, ValueError):
    """A webhook message is unsigned, wrongly signed, or signed too long ago or ahead."""


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret (the prefix is optional, padding may be missing)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as err:
        raise WebhookVerificationError("the webhook secret is not base64") from err
    if not key:
        raise WebhookVerificationError("the webhook secret is empty")
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `v1,<base64>` signature of one message."""
    data = body.encode() if isinstance(body, str) else body
    signed = f"{msg_id}.{timestamp}.".encode() + data
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt of a message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE,
) -> str:
    """Check a received message; returns its `webhook-id`, or raises WebhookVerificationError.

    `headers` may be any mapping of header names in any case; `body` must be the raw
    bytes received (re-encoding the JSON would change them). `now` is unix seconds.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    sent = lowered.get("webhook-signature", "")
    if not (msg_id and stamp and sent):
        raise WebhookVerificationError("a webhook-id, webhook-timestamp or signature is missing")
    try:
        timestamp = int(stamp)
    except ValueError as err:
        raise WebhookVerificationError(f"webhook-timestamp {stamp!r} is not unix seconds") from err
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp {timestamp} is more than {tolerance} s from now ({current:.0f})"
        )
    expected = signature(secret, msg_id, timestamp, body).partition(",")[2]
    for candidate in sent.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return msg_id
    raise WebhookVerificationError("no webhook-signature matches the body with this secret")
