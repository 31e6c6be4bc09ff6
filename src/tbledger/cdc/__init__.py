"""TigerBeetle's change stream (CDC): what the engine did, as it did it, into the store.

`tigerbeetle amqp` publishes every change event (a transfer, a hold posted, voided or expired)
with both accounts' balances as of that event to an AMQP exchange, at least once. `_message` is
that message, byte for byte (pure). The embedded twin publishes the same messages from its own
state with `TwinPublisher` (`_twin`), so the change stream works without a server.
`ChangeConsumer` reads the stream from RabbitMQ into the store through
`LedgerService.apply_change_events`, idempotently; `AmqpJob` runs `tigerbeetle amqp` itself, for
operators who let tbledger supervise it; `ChangeStream` is the consumer (and the job) as one part
of a process.
"""

from __future__ import annotations

from tbledger.cdc._amqp import amqp_message, redact_url
from tbledger.cdc._consumer import ChangeConsumer, ConsumerOptions, consumer_options_from
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
from tbledger.cdc._stream import ChangeStream
from tbledger.cdc._supervisor import (
    AmqpJob,
    AmqpJobOptions,
    amqp_job_arguments,
    declare_exchange,
    job_options_from,
)
from tbledger.cdc._twin import TwinPublisher, change_event
from tbledger.errors import ChangeEventError, ChangePublishError

__all__ = [
    "AmqpJob",
    "AmqpJobOptions",
    "ChangeAccount",
    "ChangeConsumer",
    "ChangeEvent",
    "ChangeEventError",
    "ChangeEventType",
    "ChangePublishError",
    "ChangeStream",
    "ChangeTransfer",
    "ConsumerOptions",
    "TwinPublisher",
    "amqp_job_arguments",
    "amqp_message",
    "change_event",
    "consumer_options_from",
    "declare_exchange",
    "decode",
    "encode_body",
    "headers",
    "job_options_from",
    "properties",
    "redact_url",
]
