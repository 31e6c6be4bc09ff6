"""The SSRF guard's rules, the retry schedule and the payload, without I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tbledger.errors import ConfigurationError, ValidationError
from tbledger.model import AuditEvent, EventKind
from tbledger.webhooks.deliverer import DeliveryOptions
from tbledger.webhooks.manage import subscription_of
from tbledger.webhooks.policy import (
    UrlRefusedError,
    backoff_s,
    check_addresses,
    check_url,
    payload,
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1:25/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("http://user:pw@hooks.example.com/", "credentials"),
        ("http:///nohost", "needs a host"),
        ("https://evil.example.net/", "not in the allowed"),
        ("http://" + "a" * 3000 + ".com/", "at most"),
    ],
)
def test_urls_the_guard_refuses(url: str, message: str) -> None:
    with pytest.raises(UrlRefusedError, match=message):
        check_url(url, allowed_hosts=["hooks.example.com"])


def test_an_allowed_host_passes_in_any_case() -> None:
    assert check_url("https://Hooks.Example.com:8443/in", allowed_hosts=["hooks.example.com"]) == (
        "hooks.example.com"
    )
    assert check_url("http://anything.example/") == "anything.example"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.4",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "0.0.0.0",
        "224.0.0.1",
        "fe80::1%eth0",
    ],
)
def test_non_public_addresses_are_refused_unless_allowed(address: str) -> None:
    with pytest.raises(UrlRefusedError, match="non-public"):
        check_addresses("h", ["93.184.216.34", address], allow_private=False)
    check_addresses("h", [address], allow_private=True)


def test_public_addresses_pass_and_no_address_is_refused() -> None:
    check_addresses(
        "h", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"], allow_private=False
    )
    with pytest.raises(UrlRefusedError, match="does not resolve"):
        check_addresses("h", [], allow_private=True)


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    assert backoff_s(0, base_s=1, cap_s=60, random=lambda: 1.0) == 0.0
    assert [backoff_s(n, base_s=1, cap_s=60, random=lambda: 1.0) for n in range(1, 9)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert backoff_s(10_000, base_s=1, cap_s=60, random=lambda: 0.5) == 30.0


def test_the_payload_names_the_event_and_spells_ids_as_the_api_does() -> None:
    event = AuditEvent(
        seq=7,
        kind=EventKind.POSTED,
        transfer_id=255,
        account_id=None,
        status=None,
        engine_timestamp=(1 << 64) - 1,
        detail={"a": 1},
        recorded_at=datetime(2026, 12, 7, tzinfo=UTC),
    )
    body = json.loads(payload(event))
    assert body["id"] == "evt_7"
    assert body["type"] == "posted"
    assert body["data"]["transfer_id"] == "0x" + "0" * 30 + "ff"
    assert body["data"]["engine_timestamp"] == str((1 << 64) - 1)


def test_a_lease_no_longer_than_the_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="lease"):
        DeliveryOptions(lease_s=5, timeout_s=5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"owners": ["a\x00b"]}, "NUL"),
        ({"owners": ["\ud800"]}, "surrogates"),
        ({"ledgers": [1 << 40]}, "2\\^32"),
        ({"kinds": ["nope"]}, "unknown event kind"),
        ({"codes": list(range(65))}, "WEBHOOK_FILTER_VALUES_MAX"),
    ],
)
def test_subscriptions_the_store_could_not_hold_are_refused(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        subscription_of(**fields)
