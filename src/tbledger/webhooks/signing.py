"""Webhook signatures in the Standard Webhooks form, pure functions with no I/O.

A delivery carries three headers: ``webhook-id`` (the event's stable id, ``evt_<seq>``, the same
on every retry, so a receiver deduplicates by it), ``webhook-timestamp`` (unix seconds of this
attempt) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``"{id}.{timestamp}.{body}"``
keyed with the secret's bytes. Secrets are written ``whsec_<base64>``; while a secret is being
rotated the delivery is signed with both, the signatures separated by a space, so a receiver that
still holds the previous secret keeps verifying. `verify_webhook` is the receiver's side and is
exported from `tbledger.client`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence

from tbledger.errors import ValidationError

__all__ = [
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "event_id",
    "new_secret",
    "sign",
    "signed_headers",
    "verify_webhook",
]

SECRET_PREFIX = "whsec_"

# Why 24 bytes: the Standard Webhooks guidance is a secret of 24 to 64 bytes; 24 is its minimum
# and its reference libraries' default.
_SECRET_BYTES = 24


class WebhookVerificationError(ValidationError):
    """A delivery's headers are missing, its timestamp is out of tolerance, or no signature
    matches."""


def new_secret() -> str:
    """A fresh random signing secret, ``whsec_<base64>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def event_id(seq: int) -> str:
    """The stable ``webhook-id`` of the audit event with this seq."""
    return f"evt_{seq}"


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError("a webhook secret is whsec_ followed by base64") from exc


def sign(secret: str, *, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of the body for this id and timestamp."""
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secrets_: Sequence[str], *, msg_id: str, timestamp_s: int, body: bytes
) -> dict[str, str]:
    """The three headers of a delivery, signed with every secret given (current first)."""
    if not secrets_:
        raise ValidationError("at least one secret is needed to sign")
    signatures = " ".join(
        sign(s, msg_id=msg_id, timestamp_s=timestamp_s, body=body) for s in secrets_
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signatures,
    }


def verify_webhook(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    tolerance_s: int = 300,
    *,
    now_s: float | None = None,
) -> None:
    """Check a delivery as its receiver: raises `WebhookVerificationError` unless one of the
    signatures is `secret`'s over this payload and the timestamp is within `tolerance_s` of now
    (which bounds how long a captured delivery can be replayed). Header names are matched in any
    case."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp_text = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as exc:
        raise WebhookVerificationError(f"missing header {exc.args[0]}") from None
    try:
        timestamp_s = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    now = time.time() if now_s is None else now_s
    if abs(now - timestamp_s) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    body = payload.encode() if isinstance(payload, str) else payload
    expected = sign(secret, msg_id=msg_id, timestamp_s=timestamp_s, body=body)
    for candidate in signatures.split(" "):
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return
    raise WebhookVerificationError("no signature matches")
