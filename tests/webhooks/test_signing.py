"""Webhook signatures: the Standard Webhooks form, checked against the svix reference library."""

from __future__ import annotations

import time

import pytest
from svix.webhooks import Webhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError

from tbledger.client import WebhookVerificationError, verify_webhook
from tbledger.webhooks.signing import event_id, new_secret, sign, signed_headers

BODY = b'{"id":"evt_7","type":"posted"}'


def test_a_signature_verifies_with_svix_and_with_our_helper() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    headers = signed_headers([secret], msg_id=event_id(7), timestamp_s=int(time.time()), body=BODY)
    assert headers["webhook-id"] == "evt_7"
    assert headers["webhook-signature"].startswith("v1,")
    Webhook(secret).verify(BODY, headers)
    verify_webhook(BODY, headers, secret)
    verify_webhook(BODY.decode(), {k.upper(): v for k, v in headers.items()}, secret)


def test_during_a_rotation_both_secrets_verify() -> None:
    current, previous = new_secret(), new_secret()
    headers = signed_headers(
        [current, previous], msg_id="evt_1", timestamp_s=int(time.time()), body=BODY
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (current, previous):
        Webhook(secret).verify(BODY, headers)
        verify_webhook(BODY, headers, secret)
    with pytest.raises(SvixVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(BODY, headers, new_secret())


def test_a_known_vector_matches() -> None:
    # The Standard Webhooks specification's example secret, id and timestamp.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = sign(
        secret,
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp_s=1614265330,
        body=(b'{"test": 2432232314}'),
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-timestamp": "1"}, "tolerance"),
        ({"webhook-timestamp": "soon"}, "integer"),
        ({"webhook-id": "evt_8"}, "no signature"),
    ],
)
def test_a_tampered_or_stale_delivery_is_refused(change: dict[str, str], message: str) -> None:
    secret = new_secret()
    headers = signed_headers([secret], msg_id="evt_7", timestamp_s=int(time.time()), body=BODY)
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook(BODY, {**headers, **change}, secret)
    with pytest.raises(SvixVerificationError):
        Webhook(secret).verify(BODY, {**headers, **change})


def test_a_changed_body_or_a_missing_header_is_refused() -> None:
    secret = new_secret()
    headers = signed_headers([secret], msg_id="evt_7", timestamp_s=int(time.time()), body=BODY)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(BODY + b" ", headers, secret)
    del headers["webhook-signature"]
    with pytest.raises(WebhookVerificationError, match="missing header"):
        verify_webhook(BODY, headers, secret)
