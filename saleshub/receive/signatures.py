"""Standard Webhooks signatures: verify ``webhook-id``/``webhook-timestamp``/``webhook-signature``.

The scheme (https://www.standardwebhooks.com): the signed content is ``{id}.{timestamp}.{body}`` over
the body's exact bytes, signed with HMAC-SHA256 under a ``whsec_``-prefixed base64 secret; the
signature header holds one or more space-separated ``v1,<base64>`` entries so a sender can rotate
secrets, and the timestamp must lie within a tolerance (default ±5 minutes) of our clock.

Why not the ``standardwebhooks`` package: its ``verify`` decodes the body as UTF-8 (an ISO-8859-1
XML body cannot be verified, and invalid UTF-8 raises ``UnicodeDecodeError``), and malformed headers
raise ``ValueError``/``binascii.Error`` instead of its verification error — each a 500 where the
contract asks for a 401. The scheme is a few lines of ``hmac``; what matters is that every malformed
input ends in ``SignatureError`` with a reason an integrator can act on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence

from saleshub.errors import SalesHubError
from saleshub.platform.secrets import decode_secret

__all__ = ["SignatureError", "sign", "sign_with_key", "verify", "webhook_headers"]

_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_MAX_SIGNATURES = 16


class SignatureError(SalesHubError):
    """The webhook's signature headers are missing, malformed, out of tolerance or do not match."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"webhook signature rejected: {reason}")


def _mac(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (one ``v1`` entry) for these inputs."""
    return sign_with_key(decode_secret(secret), msg_id, timestamp, body)


def sign_with_key(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``sign`` with the secret's key bytes (as ``SecretStore.webhook_keys`` gives them)."""
    mac = _mac(key, msg_id, str(timestamp), body)
    return "v1," + base64.b64encode(mac).decode("ascii")


def webhook_headers(
    key: bytes, webhook_id: str, body: bytes, *, content_type: str, at: int | None = None
) -> dict[str, str]:
    """The headers of a request signed with the secret's ``key`` bytes, at ``at`` (default: now)."""
    timestamp = int(time.time()) if at is None else at
    return {
        "content-type": content_type,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_with_key(key, webhook_id, timestamp, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise SignatureError(f"the {name} header is missing")
    return value.strip()


def verify(
    keys: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_seconds: int,
) -> str:
    """Check the signature headers (lower-case names) against ``body``; the verified webhook id."""
    if not keys:
        raise SignatureError("no webhook secret is configured for this system")
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not _ID.match(msg_id):
        raise SignatureError("webhook-id must be 1 to 255 printable ASCII characters")
    if not _TIMESTAMP.match(timestamp):
        raise SignatureError("webhook-timestamp must be whole seconds since the Unix epoch")
    skew = int(timestamp) - now
    # Whole seconds, as the header counts them, the same way either side of our clock: 300.9 s
    # off is "300 s off", within a tolerance of 300 s; what is refused is said truly (301 s or more).
    distance = int(abs(skew))
    if distance > tolerance_seconds:
        direction = "old" if skew < 0 else "far in the future"
        raise SignatureError(
            f"webhook-timestamp is too {direction} ({distance} s off; tolerance {tolerance_seconds} s)"
        )
    entries = signatures.split()
    if len(entries) > _MAX_SIGNATURES:
        raise SignatureError(f"webhook-signature holds more than {_MAX_SIGNATURES} signatures")
    given: list[bytes] = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue  # other schemes (v1a, …) may sit beside v1; they are not ours to check
        try:
            given.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    if not given:
        raise SignatureError("webhook-signature holds no well-formed v1,<base64> signature")
    for key in keys:
        expected = _mac(key, msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in given):
            return msg_id
    raise SignatureError("no signature matches the body under any configured secret")
