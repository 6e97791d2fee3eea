"""Webhook signatures: `X-Coalition-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The HMAC key is the endpoint's secret (shown once, when the endpoint is created or its
secret rotated); the message is the timestamp, a dot, and the raw request body:
`f"{t}.{body}"`. A receiver recomputes it over the bytes it received (before parsing the
JSON), compares in constant time, and refuses timestamps older than a few minutes so that
a captured request cannot be replayed later. `verify` below is that check, for receivers
written in Python and for the tests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "X-Coalition-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},{SCHEME}={_digest(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when the header carries a v1 signature of this body by this secret, made
    within `tolerance_seconds` of `now` (unix seconds). Several v1 values may be present
    (during a secret rotation a sender may sign with both); one matching is enough."""
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None or not signatures or abs(now - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
