"""The embedded twin's change stream, published to RabbitMQ as `tigerbeetle amqp` publishes it.

`TwinPublisher` reads the twin's change events (`Replica.change_events`, TigerBeetle's
``get_change_events``) and publishes one message per event, at least once, with TigerBeetle's
protocol (``src/cdc/runner.zig``), so a consumer of the stream cannot tell the engines apart:

* on start: the exchange is declared passively (it must exist, as with TigerBeetle; the default
  exchange ``""`` is not checked); the locker queue ``tigerbeetle.internal.locker.<cluster>`` is
  declared exclusive, so a second publisher for the same cluster is refused while the first is
  connected; the progress queue ``tigerbeetle.internal.progress.<cluster>`` (durable, one message
  kept, the oldest dropped) is declared and its message read and put back: publishing resumes right
  after the timestamp it names, or from the start when there is none, or after `timestamp_last`
  when given (a replay);
* then, in a loop: read up to `event_count_max` events, publish them (mandatory, persistent) and
  wait for the broker's confirms, then publish the last event's timestamp to the progress queue
  and wait for its confirm; when there is nothing new, wait `idle_interval_s`.

Events are read under the engine lock after the writes that made them were journaled (the engine
commits a write before it releases the lock), so only durable events are published. A broker
fault stops the loop; the publisher reconnects after a pause and resumes from the progress queue,
so a batch may be published twice (at least once, as TigerBeetle). The URL's password never
appears in a message or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any, Final, Self

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from tbledger.cdc._amqp import amqp_message, redact_url
from tbledger.cdc._message import (
    ChangeAccount,
    ChangeEvent,
    ChangeEventType,
    ChangeTransfer,
)
from tbledger.embedded import ChangeRecord, Replica
from tbledger.errors import ChangePublishError, ConfigurationError
from tbledger.limits import (
    CDC_PUBLISH_EVENTS_MAX,
    CDC_PUBLISH_IDLE_INTERVAL_S,
    CDC_PUBLISH_IDLE_INTERVAL_S_MAX,
    CDC_PUBLISH_IDLE_INTERVAL_S_MIN,
)

__all__ = [
    "RELEASE",
    "TwinPublisher",
    "change_event",
    "locker_queue",
    "progress_queue",
]

log = logging.getLogger("tbledger.cdc")

# The TigerBeetle release whose semantics the twin reproduces, written in the progress message as
# `tigerbeetle amqp` writes its own release (it refuses to resume after a newer one).
RELEASE: Final = "0.17.9"

_NS_PER_S: Final = 1_000_000_000
# After a broker fault, the pause before reconnecting.
_RECONNECT_PAUSE_S: Final = 1.0

_TYPES: Final = (
    ChangeEventType.SINGLE_PHASE,
    ChangeEventType.TWO_PHASE_PENDING,
    ChangeEventType.TWO_PHASE_POSTED,
    ChangeEventType.TWO_PHASE_VOIDED,
    ChangeEventType.TWO_PHASE_EXPIRED,
)


def progress_queue(cluster_id: int) -> str:
    """The queue holding the last published timestamp, named as `tigerbeetle amqp` names it."""
    return f"tigerbeetle.internal.progress.{cluster_id}"


def locker_queue(cluster_id: int) -> str:
    """The exclusive queue that keeps one publisher per cluster, named as TigerBeetle names it."""
    return f"tigerbeetle.internal.locker.{cluster_id}"


# Queue arguments exactly as runner.zig declares them (a declaration with other arguments than an
# existing queue's is refused by the broker, so these must match TigerBeetle's to share a queue).
_LOCKER_ARGUMENTS: Final[dict[str, str | bool | int]] = {
    "x-overflow": "drop-head",
    "x-single-active-consumer": True,
    "x-max-length": 0,
    "x-max-length-bytes": 0,
}
_PROGRESS_ARGUMENTS: Final[dict[str, str | bool | int]] = {
    "x-overflow": "drop-head",
    "x-single-active-consumer": True,
    "x-max-length": 1,
    "x-max-length-bytes": 0,
}


def change_event(record: ChangeRecord) -> ChangeEvent:
    """The engine's change record as the change stream's `ChangeEvent`."""
    return ChangeEvent(
        timestamp=record.timestamp,
        type=_TYPES[record.type],
        ledger=record.ledger,
        transfer=ChangeTransfer(
            id=record.transfer_id,
            amount=record.transfer_amount,
            pending_id=record.transfer_pending_id,
            user_data_128=record.transfer_user_data_128,
            user_data_64=record.transfer_user_data_64,
            user_data_32=record.transfer_user_data_32,
            timeout=record.transfer_timeout,
            code=record.transfer_code,
            flags=record.transfer_flags,
            timestamp=record.transfer_timestamp,
        ),
        debit_account=ChangeAccount(
            id=record.debit_account_id,
            debits_pending=record.debit_account_debits_pending,
            debits_posted=record.debit_account_debits_posted,
            credits_pending=record.debit_account_credits_pending,
            credits_posted=record.debit_account_credits_posted,
            user_data_128=record.debit_account_user_data_128,
            user_data_64=record.debit_account_user_data_64,
            user_data_32=record.debit_account_user_data_32,
            code=record.debit_account_code,
            flags=record.debit_account_flags,
            timestamp=record.debit_account_timestamp,
        ),
        credit_account=ChangeAccount(
            id=record.credit_account_id,
            debits_pending=record.credit_account_debits_pending,
            debits_posted=record.credit_account_debits_posted,
            credits_pending=record.credit_account_credits_pending,
            credits_posted=record.credit_account_credits_posted,
            user_data_128=record.credit_account_user_data_128,
            user_data_64=record.credit_account_user_data_64,
            user_data_32=record.credit_account_user_data_32,
            code=record.credit_account_code,
            flags=record.credit_account_flags,
            timestamp=record.credit_account_timestamp,
        ),
    )


class TwinPublisher:
    """Publishes an embedded engine's change events to an AMQP exchange, as `tigerbeetle amqp`.

    ``async with TwinPublisher(replica, url=..., exchange=...)`` (or `start` / `stop`). `start`
    connects and recovers the progress, and raises `ChangePublishError` when the broker cannot be
    reached, the exchange does not exist, or another publisher holds the cluster's lock; the loop
    then runs in the background until `stop`.
    """

    def __init__(
        self,
        replica: Replica,
        *,
        url: str,
        exchange: str,
        routing_key: str = "",
        timestamp_last: int | None = None,
        idle_interval_s: float = CDC_PUBLISH_IDLE_INTERVAL_S,
        event_count_max: int = CDC_PUBLISH_EVENTS_MAX,
    ) -> None:
        if not exchange and not routing_key:
            raise ConfigurationError("the change stream needs an exchange or a routing key")
        if (
            not CDC_PUBLISH_IDLE_INTERVAL_S_MIN
            <= idle_interval_s
            <= CDC_PUBLISH_IDLE_INTERVAL_S_MAX
        ):
            raise ConfigurationError(
                f"idle_interval_s must be in [{CDC_PUBLISH_IDLE_INTERVAL_S_MIN}, "
                f"{CDC_PUBLISH_IDLE_INTERVAL_S_MAX}], got {idle_interval_s}"
            )
        if not 1 <= event_count_max <= CDC_PUBLISH_EVENTS_MAX:
            raise ConfigurationError(
                f"event_count_max must be in [1, {CDC_PUBLISH_EVENTS_MAX}], got {event_count_max}"
            )
        if timestamp_last is not None and timestamp_last < 0:
            raise ConfigurationError("timestamp_last must not be negative")
        self._replica = replica
        self._url = url
        self._exchange_name = exchange
        self._routing_key = routing_key
        self._override = timestamp_last
        self._idle_interval_s = idle_interval_s
        self._event_count_max = event_count_max
        self._progress_queue = progress_queue(replica.cluster_id)
        self._locker_queue = locker_queue(replica.cluster_id)
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # The last timestamp the broker confirmed (with its progress message); 0: none yet.
        self.timestamp_last = 0
        self.published = 0

    @property
    def where(self) -> str:
        """The broker (without password) and exchange, for messages."""
        return f"{redact_url(self._url)} exchange {self._exchange_name!r}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, take the cluster's lock, recover progress; then publish in the background."""
        if self._task is not None:
            raise ChangePublishError("the change stream publisher is already running")
        await self._connect(self._override)
        self._task = asyncio.create_task(self._run(), name="tbledger-cdc-publisher")

    async def stop(self) -> None:
        """Stop publishing (a batch in flight is finished first) and disconnect."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._disconnect()

    def wake(self) -> None:
        """Poll now rather than at the end of the idle interval (after a write, say)."""
        self._wake.set()

    # -- connection ----------------------------------------------------------------------------

    async def _connect(self, override: int | None) -> None:
        try:
            self._connection = await aio_pika.connect(self._url)
        except (OSError, aiormq.exceptions.AMQPError) as exc:
            raise ChangePublishError(
                f"cannot connect to the change stream broker {redact_url(self._url)}: "
                f"{type(exc).__name__}"
            ) from None
        try:
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._channel = channel
            if self._exchange_name:
                try:
                    self._exchange = await channel.get_exchange(self._exchange_name, ensure=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    raise ChangePublishError(
                        f"the change stream exchange {self._exchange_name!r} does not exist on "
                        f"{redact_url(self._url)}: declare it first (as for `tigerbeetle amqp`)"
                    ) from None
                # A failed passive declaration closes the channel; the next steps need a new one.
            else:
                self._exchange = channel.default_exchange
            try:
                await channel.declare_queue(
                    self._locker_queue,
                    durable=False,
                    exclusive=True,
                    auto_delete=True,
                    arguments=dict(_LOCKER_ARGUMENTS),
                )
            except aiormq.exceptions.ChannelLockedResource:
                raise ChangePublishError(
                    f"another change stream publisher runs for cluster {self._replica.cluster_id} "
                    f"on {redact_url(self._url)} (it holds {self._locker_queue!r})"
                ) from None
            progress = await channel.declare_queue(
                self._progress_queue,
                durable=True,
                arguments=dict(_PROGRESS_ARGUMENTS),
            )
            if override is not None:
                self.timestamp_last = override
            else:
                message = await progress.get(no_ack=False, fail=False)
                if message is None:
                    self.timestamp_last = 0
                else:
                    self.timestamp_last = _progress_timestamp(message.headers)
                    # Put it back: it stays the progress record should we restart before the
                    # next batch is confirmed.
                    await message.nack(requeue=True)
        except ChangePublishError:
            await self._disconnect()
            raise
        except (OSError, aiormq.exceptions.AMQPError) as exc:
            await self._disconnect()
            raise ChangePublishError(
                f"change stream broker {redact_url(self._url)} failed: {type(exc).__name__}: "
                f"{_reason(exc)}"
            ) from None
        log.info(
            "publishing the change stream to %s from timestamp %d", self.where, self.timestamp_last
        )

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                published = await self.publish_batch()
            except ChangePublishError as exc:
                log.warning("change stream: %s; reconnecting", exc)
                await self._disconnect()
                await asyncio.sleep(_RECONNECT_PAUSE_S)
                try:
                    await self._connect(None)
                except ChangePublishError as again:
                    log.warning("change stream: %s", again)
                continue
            if published == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_interval_s)

    async def publish_batch(self) -> int:
        """Publish the next batch of events and its progress record; return how many events."""
        if self._connection is None or self._exchange is None or self._channel is None:
            await self._connect(None)
        exchange, channel = self._exchange, self._channel
        if exchange is None or channel is None:
            raise ChangePublishError("the change stream publisher is not connected")
        records = await asyncio.to_thread(
            self._replica.change_events, self.timestamp_last + 1, self._event_count_max
        )
        if not records:
            return 0
        events = [change_event(record) for record in records]
        try:
            # Publish the whole batch, then wait for every confirm (as TigerBeetle does).
            await asyncio.gather(
                *(
                    exchange.publish(amqp_message(e), routing_key=self._routing_key, mandatory=True)
                    for e in events
                )
            )
            last = events[-1].timestamp
            await channel.default_exchange.publish(
                aio_pika.Message(
                    b"",
                    headers={"release": RELEASE, "timestamp": last},
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    timestamp=last // _NS_PER_S,
                ),
                routing_key=self._progress_queue,
                mandatory=True,
            )
        except aio_pika.exceptions.DeliveryError as exc:
            raise ChangePublishError(
                f"the broker did not route a change event from {self.where}: "
                f"{_reason(exc)} (does a queue receive the exchange's messages?)"
            ) from None
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
            raise ChangePublishError(
                f"publishing the change stream to {self.where} failed: {type(exc).__name__}"
            ) from None
        self.timestamp_last = last
        self.published += len(events)
        return len(events)


def _progress_timestamp(table: Any) -> int:
    value = table.get("timestamp") if isinstance(table, dict) else None
    if type(value) is not int or value <= 0:
        raise ChangePublishError(f"the progress record has no valid timestamp: {value!r}")
    return value


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
