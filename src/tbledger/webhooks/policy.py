"""Webhook rules with no I/O: which URLs may be called, the retry schedule, the payload.

SSRF guard, in order: the scheme is http or https; the URL has a host and no credentials; when an
allowlist of hosts is configured the host is on it; and every address the host resolves to (the
resolving is the deliverer's, `check_addresses` judges the result) is public unless private,
loopback, link-local and other non-global addresses are allowed by configuration. Redirects are
never followed (the deliverer treats a 3xx as a failure), so an allowed host cannot send the
request on to a refused one. The addresses are checked on every attempt, so a name that starts
resolving to an internal address is refused from then on.

Retries: after the n-th consecutive failure the deliverer waits a random time in
[0, min(cap, base * 2^(n-1))] ("full jitter"), so many endpoints failing at once do not retry in
step.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from tbledger.errors import ValidationError
from tbledger.ids import format_id
from tbledger.limits import WEBHOOK_URL_CHARS_MAX
from tbledger.model import AuditEvent
from tbledger.webhooks.signing import event_id

__all__ = ["UrlRefusedError", "backoff_s", "check_addresses", "check_url", "payload"]


class UrlRefusedError(ValidationError):
    """The SSRF guard refused an endpoint's URL or the addresses its host resolves to."""


def check_url(url: str, *, allowed_hosts: Iterable[str] = ()) -> str:
    """The URL's host, once the scheme, shape and allowlist are acceptable; else
    `UrlRefusedError`."""
    if not isinstance(url, str) or len(url) > WEBHOOK_URL_CHARS_MAX:
        raise UrlRefusedError(f"a webhook URL is text of at most {WEBHOOK_URL_CHARS_MAX} chars")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlRefusedError(f"only http and https URLs are called, not {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise UrlRefusedError("a webhook URL cannot hold credentials")
    host = (parts.hostname or "").lower()
    if not host:
        raise UrlRefusedError("a webhook URL needs a host")
    allowed = {h.lower() for h in allowed_hosts}
    if allowed and host not in allowed:
        raise UrlRefusedError(f"host {host!r} is not in the allowed webhook hosts")
    return host


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> None:
    """Refuse a host that resolves to a non-global address (loopback, private, link-local,
    multicast, reserved) unless `allow_private`."""
    found = list(addresses)
    if not found:
        raise UrlRefusedError(f"host {host!r} does not resolve")
    if allow_private:
        return
    for text in found:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            raise UrlRefusedError(f"host {host!r} resolves to a non-public address {address}")


def backoff_s(failures: int, *, base_s: float, cap_s: float, random: Callable[[], float]) -> float:
    """The wait after `failures` consecutive failures: full jitter under an exponential cap."""
    if failures < 1:
        return 0.0
    # The exponent is bounded so that 2^n stays a small float long after the cap is reached.
    ceiling = min(cap_s, base_s * 2.0 ** min(failures - 1, 60))
    return ceiling * random()


def payload(event: AuditEvent) -> bytes:
    """The body POSTed for one audit event: JSON, ids as the API spells them."""
    document = {
        "id": event_id(event.seq),
        "type": str(event.kind),
        "seq": event.seq,
        "data": {
            "transfer_id": None if event.transfer_id is None else format_id(event.transfer_id),
            "account_id": None if event.account_id is None else format_id(event.account_id),
            "status": event.status,
            # Text: a u64 does not survive a JavaScript receiver's number type.
            "engine_timestamp": (
                None if event.engine_timestamp is None else str(event.engine_timestamp)
            ),
            "detail": dict(event.detail),
            "recorded_at": event.recorded_at.isoformat(),
        },
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
