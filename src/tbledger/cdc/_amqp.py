"""What every AMQP party of the change stream shares: an event's message, and a URL for logs.

`amqp_message` is the message `tigerbeetle amqp` publishes for an event: `_message`'s body and
headers with its properties (content type, persistent delivery, application id, the event's
timestamp in whole seconds). The embedded engine's publisher and the benchmarks publish through
it. `redact_url` keeps a broker URL's password out of every message and log line.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

import aio_pika

from tbledger.cdc._message import APP_ID, CONTENT_TYPE, ChangeEvent, encode_body, headers

__all__ = ["amqp_message", "redact_url"]

_NS_PER_S: Final = 1_000_000_000


def amqp_message(event: ChangeEvent) -> aio_pika.Message:
    """The AMQP message `tigerbeetle amqp` publishes for `event`."""
    return aio_pika.Message(
        encode_body(event),
        headers=dict(headers(event)),
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        app_id=APP_ID,
        # AMQP timestamps are whole seconds; the body carries the nanoseconds.
        timestamp=event.timestamp // _NS_PER_S,
    )


def redact_url(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
