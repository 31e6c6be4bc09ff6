"""TigerBeetle's change stream (CDC): what the engine did, as it did it, into the store.

`tigerbeetle amqp` publishes every change event (a transfer, a hold posted, voided or expired)
with both accounts' balances as of that event to an AMQP exchange, at least once. `_message` is
that message, byte for byte (pure). The embedded twin publishes the same messages from its own
state with `TwinPublisher` (`_twin`), so the change stream works without a server.
"""

from __future__ import annotations

from tbledger.cdc._message import (
    ChangeAccount,
    ChangeEvent,
    ChangeEventType,
    ChangeTransfer,
    decode,
    encode_body,
    headers,
    properties,
)
from tbledger.cdc._twin import TwinPublisher, change_event
from tbledger.errors import ChangeEventError, ChangePublishError

__all__ = [
    "ChangeAccount",
    "ChangeEvent",
    "ChangeEventError",
    "ChangeEventType",
    "ChangePublishError",
    "ChangeTransfer",
    "TwinPublisher",
    "change_event",
    "decode",
    "encode_body",
    "headers",
    "properties",
]
