"""Standard Webhooks signatures: the spec's own test vector, an independent HMAC by hand,
and what `verify` refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from hub.webhooks.signing import (
    WebhookVerificationError,
    new_secret,
    sign_headers,
    signature,
    verify,
)

# The test vector of the Standard Webhooks reference libraries
# (github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
# test_sign_function; the same values appear in the other languages' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def by_hand(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The signature computed from the spec's words, sharing no code with the hub."""
    key = base64.b64decode(secret[len("whsec_") :])
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_the_spec_test_vector_signs_and_verifies() -> None:
    assert signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert by_hand(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.encode()) == SPEC_SIGNATURE
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    assert verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP + 10) == SPEC_ID


def test_a_new_secret_signs_as_an_independent_implementation_does() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    body = b'{"type":"sale.created","timestamp":"2024-05-01T09:00:00.000Z","data":{}}'
    headers = sign_headers(secret, "msg_1", 1714554000, body)
    assert headers["webhook-signature"] == by_hand(secret, "msg_1", 1714554000, body)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1714554000"


WRONG = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="


def test_verify_finds_the_one_matching_signature_among_several() -> None:
    headers = {
        "Webhook-Id": SPEC_ID,  # header names in any case
        "Webhook-Timestamp": str(SPEC_TIMESTAMP),
        "Webhook-Signature": f"v1,{WRONG} v2,xyz {SPEC_SIGNATURE}",
    }
    assert verify(SPEC_SECRET, headers, SPEC_BODY.encode(), now=SPEC_TIMESTAMP) == SPEC_ID
    assert verify(SPEC_SECRET[6:], headers, SPEC_BODY, now=SPEC_TIMESTAMP) == SPEC_ID


def signed(**changes: str) -> dict[str, str]:
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    headers.update(changes)
    return {name: value for name, value in headers.items() if value}


@pytest.mark.parametrize(
    ("headers", "body", "words"),
    [
        (signed(), '{"test": 2432232315}', "no webhook-signature matches"),
        (signed(**{"webhook-id": "msg_other"}), SPEC_BODY, "no webhook-signature matches"),
        (signed(**{"webhook-timestamp": "1614265331"}), SPEC_BODY, "no webhook-signature"),
        (signed(**{"webhook-signature": ""}), SPEC_BODY, "missing"),
        (signed(**{"webhook-id": ""}), SPEC_BODY, "missing"),
        (signed(**{"webhook-timestamp": "soon"}), SPEC_BODY, "not unix seconds"),
        (
            signed(**{"webhook-signature": "v2," + SPEC_SIGNATURE[3:]}),
            SPEC_BODY,
            "no webhook-signature",
        ),
    ],
)
def test_verify_refuses_a_message_that_was_changed(
    headers: dict[str, str], body: str, words: str
) -> None:
    with pytest.raises(WebhookVerificationError, match=words):
        verify(SPEC_SECRET, headers, body, now=SPEC_TIMESTAMP)


def test_verify_refuses_another_secret_and_an_old_or_future_timestamp() -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook-signature"):
        verify(new_secret(), signed(), SPEC_BODY, now=SPEC_TIMESTAMP)
    with pytest.raises(WebhookVerificationError, match="from now"):
        verify(SPEC_SECRET, signed(), SPEC_BODY, now=SPEC_TIMESTAMP + 301)
    with pytest.raises(WebhookVerificationError, match="from now"):
        verify(SPEC_SECRET, signed(), SPEC_BODY, now=SPEC_TIMESTAMP - 301)
    with pytest.raises(WebhookVerificationError, match="not base64"):
        verify("whsec_!!!", signed(), SPEC_BODY, now=SPEC_TIMESTAMP)
