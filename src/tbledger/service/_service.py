"""The ledger service: accounts, balances and transfers over TigerBeetle, with an audit trail.

``LedgerService`` is the specification's ``ITigerBeetleService`` in Python, completed. A write goes
down once and comes back once (DESIGN §3, "write last, read first"):

1. validate: bad input never reaches the engine;
2. persist the intent (the transfer with its id and the caller's context) and a ``submitted``
   audit event, one statement per batch — if the store is down, nothing reaches the engine;
3. submit to the engine through the batcher, within a deadline that never cancels the request;
4. append the outcome as audit events (with the engine's timestamp);
5. emit events to listeners.

A crash anywhere leaves at worst intents without outcome; ``recover()`` reads the engine first
(``lookup_transfers``), records what already happened, and resubmits the rest with the same ids
and fields, whole chains at a time — so nothing is lost and nothing happens twice. Money is read
from the engine; names and metadata from the store. A frozen or closed account is enforced by the
engine itself, through a closing pending transfer (DESIGN §4).

This module is the facade: it owns the lifecycle (the store, the engine gateway, the event bus),
wires the collaborators that do the work when it connects, handing each the store, gateway and
bus it needs, and delegates every public method to one of them: `EngineGateway` (engine calls),
`Writer` (steps 1-5), `Recovery` (settling), `Holds` (hold status and expiry, decided from the
engine whenever a status is read), `Accounts` and `AccountStatuses`, and `Reads`. Ledgers and
codes named in the chart of accounts are resolved through its `Chart`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack

import tigerbeetle as tb

from tbledger.balances import AccountType, Balance
from tbledger.chart import Chart
from tbledger.config import Settings
from tbledger.engine import EngineClient
from tbledger.engine.batcher import Batcher
from tbledger.errors import NotConnectedError
from tbledger.events import EventBus, Listener
from tbledger.ids import parse_id
from tbledger.limits import LISTING_PAGE_ROWS_DEFAULT
from tbledger.model import AccountRecord, AccountStatus, ApiKeyRecord, AuditEvent, TransferIntent
from tbledger.resilience import CircuitBreaker
from tbledger.service._accounts import Accounts, AccountStatuses
from tbledger.service._changes import ChangeReport, Changes
from tbledger.service._claims import Claims
from tbledger.service._discovery import AccountRecordPage, account_page, metadata_page
from tbledger.service._gateway import EngineGateway
from tbledger.service._history import (
    AccountHistory,
    ActivityPage,
    BalanceAsOf,
    BalanceHistory,
    Statement,
    TimeLike,
)
from tbledger.service._holds import Holds
from tbledger.service._intents import (
    AMOUNT_MAX,
    checked_amount,
    checked_object_id,
    intent_of,
    request_of,
    resolution_intent,
    resolution_intents,
    with_control,
)
from tbledger.service._reads import Reads
from tbledger.service._recorder import Recorder
from tbledger.service._recovery import Recovery
from tbledger.service._values import (
    AccountInfo,
    EngineObserver,
    Health,
    IntentPage,
    PendingResolution,
    RecoveryReport,
    TransferFields,
    TransferPage,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from tbledger.service._writer import Writer
from tbledger.store import Store

if TYPE_CHECKING:
    # Only types here: tbledger.prices imports the flows, which import the service; the change
    # stream's consumer (tbledger.cdc) drives the service.
    from tbledger.cdc import ChangeEvent
    from tbledger.prices import PriceRecords

__all__ = ["LedgerService"]


class LedgerService:
    """Accounts, balances and transfers on TigerBeetle, with an append-only audit trail.

    Build it from `Settings` (or keywords) and ``await connect()`` (or ``async with``). Tests and
    embedders may pass an `engine` client and a `store` directly, and a `chart` of accounts
    (default: `Chart.default()`) whose ledger and code names requests may use.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        engine: EngineClient | None = None,
        store: Store | None = None,
        chart: Chart | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = Settings(**overrides)
        elif overrides:
            # Validated like any settings: a typo or a bad value is a ConfigurationError.
            settings = type(settings)(**{**settings.model_dump(), **overrides})
        self.settings = settings
        self._chart = chart if chart is not None else Chart.default()
        self._store = store
        self._owns_store = store is None
        self._bus = EventBus()
        # The gateway exists before the service connects: its breaker and observer do.
        self._gateway = EngineGateway(settings, engine)
        # The collaborators over the connected store; None outside connect() .. close().
        self._rooms: _Rooms | None = None
        # Counters for metrics and tests.
        self.stats: dict[str, int] = {"audit_write_failures": 0, "outcome_unknown": 0}

    # -- lifecycle ------------------------------------------------------------------------------

    async def connect(self, *, recover: bool = True, background: bool = False) -> None:
        """Connect the store (migrating it) and the engine, then run `recover()` once.

        `background=True` also runs recovery and hold expiry every `recovery_interval_s`.
        """
        if self._rooms is not None:
            return
        if self._store is None:
            self._store = await Store.connect(
                self.settings.database_url,
                migrate=self.settings.migrate,
                options=self.settings.store_options(),
            )
        await self._gateway.open()
        self._rooms = _Rooms.wire(
            store=self._store,
            gateway=self._gateway,
            bus=self._bus,
            settings=self.settings,
            chart=self._chart,
            stats=self.stats,
        )
        if recover:
            await self.recover()
        if background:
            self._rooms.recovery.start()

    async def close(self) -> None:
        """Stop background work, wait for listeners, close the engine and the store."""
        rooms = self._rooms
        if rooms is not None:
            await rooms.recovery.stop()
            await rooms.writer.settle()
        await self._bus.drain()
        self._rooms = None
        await self._gateway.close()
        if self._owns_store and self._store is not None:
            await self._store.close()
            self._store = None

    disconnect = close

    async def __aenter__(self) -> LedgerService:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def _live(self) -> _Rooms:
        if self._rooms is None:
            raise NotConnectedError("the ledger service is not connected", code="not_connected")
        return self._rooms

    @property
    def store(self) -> Store:
        if self._store is None or self._rooms is None:
            raise NotConnectedError("the ledger service is not connected", code="not_connected")
        return self._store

    @property
    def batcher(self) -> Batcher:
        return self._gateway.batcher

    @property
    def engine(self) -> EngineClient:
        return self._gateway.client

    @property
    def breaker(self) -> CircuitBreaker:
        return self._gateway.breaker

    @property
    def chart(self) -> Chart:
        """The chart of accounts whose ledger and code names requests may use."""
        return self._chart

    def on(self, event: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` on `event` (see `LedgerEventName`); returns an unsubscribe function."""
        return self._bus.on(event, listener)

    def observe_engine_requests(self, observer: EngineObserver | None) -> None:
        """Call `observer(operation, events, seconds)` after every engine request (one batch of
        coalesced calls); None stops it. It runs on the write path: keep it cheap."""
        self._gateway.observe(observer)

    async def health_check(self) -> Health:
        """Engine and store reachability, engine latency, and the breaker's state."""
        detail: dict[str, str] = {}
        latency_ms: float | None = None
        try:
            latency_ms = await self._gateway.ping_ms()
        except Exception as exc:
            detail["engine"] = f"{type(exc).__name__}: {exc}"
        store_ok = False
        try:
            await self.store.ping()
            store_ok = True
        except Exception as exc:
            detail["store"] = f"{type(exc).__name__}: {exc}"
        breaker = self._gateway.breaker.state
        return Health(latency_ms is not None, store_ok, breaker, latency_ms, detail)

    # -- accounts -------------------------------------------------------------------------------

    async def create_account(
        self,
        *,
        owner_id: str | None,
        account_type: str,
        ledger: int | str,
        code: int | str | None = None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        flags: tb.AccountFlags | None = None,
        account_id: int | str | None = None,
        control: Mapping[str, Any] | None = None,
        flow_ref: str | None = None,
        user_data_128: int = 0,
        user_data_64: int = 0,
        user_data_32: int = 0,
    ) -> AccountInfo:
        """Create an account in the engine, then its mapping. Idempotent with the same id.

        The engine account is created first: an engine account without a mapping holds no money
        and nobody knows its id, while a mapping without an engine account would show a ledger
        entry that does not exist. Retrying with the same `account_id` completes either half.

        `ledger` and `code` are engine numbers, or names (or numbers in digits) in the chart:
        ``ledger="USD"``; a name the chart lacks raises `UnknownLedgerError` / `UnknownCodeError`.
        Without `code`, the account type's default code. `metadata` is the caller's, stored and
        returned and never read to decide anything. `control` and `flow_ref` are the platform's
        own facts about the account (a system account's role, the payment or contract a flow
        account serves): the flows set them; a shell never passes a caller's input there
        (DESIGN §9).
        """
        return await self._live.accounts.create_account(
            owner_id=owner_id,
            account_type=account_type,
            ledger=ledger,
            code=code,
            name=name,
            metadata=metadata,
            flags=flags,
            account_id=account_id,
            control=control,
            flow_ref=flow_ref,
            user_data_128=user_data_128,
            user_data_64=user_data_64,
            user_data_32=user_data_32,
        )

    async def get_account(self, account_id: int | str) -> AccountInfo:
        """The account's mapping and its balance from the engine."""
        return await self._live.accounts.get_account(account_id)

    async def get_account_record(self, account_id: int | str) -> AccountRecord | None:
        """The account's mapping (type, owner, status, control facts) from the store, or None;
        no engine read."""
        return await self.store.get_account(checked_object_id("account_id", account_id))

    async def get_account_records(
        self, account_ids: Iterable[int | str]
    ) -> dict[int, AccountRecord]:
        """The mappings of the known accounts among `account_ids`, by id; no engine read."""
        ids = [checked_object_id("account_id", a) for a in account_ids]
        return await self.store.get_accounts(ids)

    async def get_account_records_by_owner(self, owner_id: str) -> list[AccountRecord]:
        """The owner's account mappings in id order; no engine read."""
        return await self.store.get_accounts_by_owner(owner_id)

    async def get_account_by_name(self, name: str) -> AccountRecord | None:
        """The account with this unique name (a system or flow account), or None."""
        return await self.store.get_account_by_name(name)

    async def get_accounts_by_flow_ref(self, flow_ref: str) -> list[AccountRecord]:
        """The flow accounts serving this payment or contract id, in id order (one per owner
        that used the id)."""
        return await self.store.get_accounts_by_flow_ref(flow_ref)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """An HTTP API key's record by its public id, or None (the API's `KeyRing` reads it)."""
        return await self.store.get_api_key(key_id)

    @property
    def price_records(self) -> PriceRecords:
        """The operator's rates, the issued quotes and the fee schedules (`tbledger.prices`)."""
        return self.store

    async def get_accounts_by_owner(self, owner_id: str) -> list[AccountInfo]:
        """Every account of this owner, with balances (one engine lookup for all)."""
        return await self._live.accounts.get_accounts_by_owner(owner_id)

    async def get_balance(self, account_id: int | str) -> Balance:
        """The account's balance, on its normal side, from the engine."""
        (balance,) = await self.get_balances([account_id])
        return balance

    async def get_balances(self, account_ids: Sequence[int | str]) -> list[Balance]:
        """Balances of several accounts in one engine request; unknown ids raise."""
        return await self._live.accounts.get_balances(account_ids)

    async def update_account_status(
        self, account_id: int | str, status: str, *, sweep_to: int | str | None = None
    ) -> AccountInfo:
        """Set an account `active`, `frozen` or `closed`; the engine enforces it.

        * frozen: a zero-amount pending transfer with ``closing_debit`` and no timeout closes the
          account in the engine, so every new transfer touching it is refused (race-free).
        * active: voids that transfer, which reopens the account.
        * closed: one linked chain, all or nothing — void the freeze if any, sweep the whole
          balance to `sweep_to` (default: the ledger's control account) with a balancing
          transfer, and close the account with a closing transfer that is never voided.
          Refused with `PendingHoldsError` (listing them) while holds on the account are
          pending: voiding one after the close would put money into an account nothing can
          move it out of. Void, post or let them expire first; holds past their timeout by the
          engine's clock do not count (the engine has released them).
        """
        accounts = self._live.accounts
        return await accounts.update_account_status(account_id, status, sweep_to=sweep_to)

    # -- transfers ------------------------------------------------------------------------------

    async def create_transfer(
        self, request: TransferRequest | None = None, /, **fields: Unpack[TransferFields]
    ) -> TransferResult:
        """Create one transfer, given as a `TransferRequest` or as its fields by keyword; raise
        a typed error if the engine refuses it. `ledger` and `code` may be chart names."""
        req = request_of(request, fields)
        intent = intent_of(req, pending=req.pending, chart=self._chart)
        return await self._live.writer.write_one(intent)

    async def create_pending_transfer(
        self, request: TransferRequest | None = None, /, **fields: Unpack[TransferFields]
    ) -> TransferResult:
        """Create a two-phase hold (`timeout` in seconds, 0 = none); arguments as
        `create_transfer`."""
        intent = intent_of(request_of(request, fields), pending=True, chart=self._chart)
        return await self._live.writer.write_one(intent)

    async def post_pending_transfer(
        self,
        pending_id: int | str,
        amount: int | None = None,
        *,
        transfer_id: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TransferResult:
        """Post a hold: in full (`amount` None) or in part (the rest is released)."""
        intent = resolution_intent(
            pending_id,
            post=True,
            amount=AMOUNT_MAX if amount is None else checked_amount(amount),
            transfer_id=transfer_id,
            idempotency_key=idempotency_key,
            event_id=event_id,
            payment_id=payment_id,
            metadata=metadata,
        )
        return await self._live.writer.write_one(intent)

    async def void_pending_transfer(
        self,
        pending_id: int | str,
        *,
        transfer_id: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TransferResult:
        """Void a hold: release all of it."""
        intent = resolution_intent(
            pending_id,
            post=False,
            amount=0,
            transfer_id=transfer_id,
            idempotency_key=idempotency_key,
            event_id=event_id,
            payment_id=payment_id,
            metadata=metadata,
        )
        return await self._live.writer.write_one(intent)

    async def create_transfers(
        self,
        requests: Sequence[TransferRequest],
        *,
        atomic: bool = False,
        control: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TransferResult]:
        """Create many transfers: one result per input, in order; errors are returned.

        One engine request per 8189 transfers. `atomic=True` links them into one chain: all or
        nothing (at most 8189). A request's `ledger` and `code` may be chart names.

        `control`, one mapping per request, records the platform's own facts about each
        transfer (the flow and leg it is): the flows pass it, and later decisions read it. A
        shell never passes a caller's input there; a request's `metadata` is the caller's and is
        never read to decide anything (DESIGN §9).
        """
        chart = self._chart
        intents = with_control(
            [intent_of(r, pending=r.pending, chart=chart) for r in requests], control
        )
        return await self._live.writer.write(intents, atomic=atomic)

    async def create_pending_transfers(
        self, requests: Sequence[TransferRequest], *, atomic: bool = False
    ) -> list[TransferResult]:
        """Create many holds; as `create_transfers`."""
        intents = [intent_of(r, pending=True, chart=self._chart) for r in requests]
        return await self._live.writer.write(intents, atomic=atomic)

    async def resolve_pending_transfers(
        self, resolutions: Sequence[PendingResolution], *, atomic: bool = True
    ) -> list[TransferResult]:
        """Post or void several holds: one result per resolution, in order; errors are returned.

        `atomic=True` (the default) links them into one chain, so all or none resolve (at most
        8189). Each goes through the same write path as `post_pending_transfer`: persisted
        intent, audit events, idempotency key, recovery. `control` on a resolution is the
        platform's own facts, as in `create_transfers`: never a caller's input.
        """
        intents = resolution_intents(resolutions)
        return await self._live.writer.write(intents, atomic=atomic and len(intents) > 1)

    async def refusal_code(
        self, status: str, *, debit_account_id: int, credit_account_id: int
    ) -> str:
        """The error code for a transfer the engine refused with `status`.

        The engine knows only that an account is closed; the store knows why. An account the
        service froze (its status, which only the service writes) answers `ACCOUNT_FROZEN`, so a
        caller can tell a freeze that may be lifted from an account closed for good, which keeps
        the engine's ``debit_account_already_closed`` / ``credit_account_already_closed``. Any
        other status is its own code. When the store cannot be read the engine's name stands:
        the refusal is the error, the reason only its context.
        """
        return await self._live.statuses.refusal_code(
            status, debit_account_id=debit_account_id, credit_account_id=credit_account_id
        )

    # -- reads ----------------------------------------------------------------------------------

    async def get_transfer(self, transfer_id: int | str) -> tb.Transfer | None:
        """The transfer as the engine holds it, or None."""
        return await self._live.reads.get_transfer(transfer_id)

    async def get_transfers(self, transfer_ids: Sequence[int | str]) -> list[tb.Transfer]:
        """The transfers the engine holds among `transfer_ids` (one request), in its order."""
        return await self._live.reads.get_transfers(transfer_ids)

    async def get_intent(self, transfer_id: int | str) -> TransferIntent | None:
        """The transfer as the service recorded it before submitting it (its fields, the
        caller's metadata and the service's control facts), or None."""
        return await self.store.get_intent(parse_id(transfer_id))

    async def get_intents(self, transfer_ids: Iterable[int | str]) -> dict[int, TransferIntent]:
        """The recorded intents among `transfer_ids`, by id; unknown ids are left out."""
        return await self.store.get_intents([parse_id(t) for t in transfer_ids])

    async def intents_in_chain(self, chain_id: int | str) -> list[TransferIntent]:
        """The members of a linked chain (an atomic batch), in chain order."""
        return await self.store.intents_in_chain(parse_id(chain_id))

    async def find_by_idempotency_key(self, key: str) -> TransferIntent | None:
        """The intent recorded under this idempotency key, or None."""
        return await self.store.find_by_idempotency_key(key)

    async def current_status(self, transfer_ids: Iterable[int | str]) -> dict[int, AuditEvent]:
        """Each transfer's latest audit event (its current status), by id; unknown ids are left
        out.

        Never stale for a hold: one past its timeout by the engine's clock reads ``expired``
        (the engine has released it), recorded then if no recovery pass has yet; the engine is
        asked only when a hold among them is pending with a timeout."""
        return await self._live.holds.current_status([parse_id(t) for t in transfer_ids])

    async def transfer_statuses(
        self, transfer_ids: Iterable[int | str]
    ) -> dict[int, TransferStatus]:
        """Each transfer's `TransferStatus`, by id (unknown ids are left out): its current status
        as `current_status` reads it and, for a posted hold, the amount its post captured and the
        amount released, in minor units, from the engine."""
        return await self._live.holds.statuses([parse_id(t) for t in transfer_ids])

    async def intents_without_outcome(
        self, limit: int, *, created_before: datetime | None = None
    ) -> list[TransferIntent]:
        """Up to `limit` intents whose events say nothing about what the engine did (the
        recovery backlog), optionally only those recorded before `created_before`."""
        return await self.store.intents_without_outcome(limit, created_before=created_before)

    async def events_since(self, cursor: int, limit: int) -> list[AuditEvent]:
        """Up to `limit` audit events after `cursor` (a `seq`), oldest first: one page of the
        durable tail (`events` polls it)."""
        return await self.store.events_since(cursor, limit)

    async def get_transfer_audit(self, transfer_id: int | str) -> list[AuditEvent]:
        """The transfer's audit history, oldest first; ending in ``expired`` for a hold past its
        timeout by the engine's clock (see `current_status`)."""
        return await self._live.holds.audit(parse_id(transfer_id))

    async def get_transfers_by_event_id(self, event_id: str) -> list[TransferIntent]:
        """The transfers recorded with this event id."""
        return await self.store.transfers_by_event_id(event_id)

    async def transfers_by_event_id(
        self,
        event_id: str,
        *,
        owner_id: str | None = None,
        after: int | str | None = None,
        limit: int = 100,
    ) -> IntentPage:
        """A page of the transfers recorded with this event id, in id order.

        With `owner_id`, only those whose debit or credit account belongs to that owner (what an
        owner may see); without, all of them. `after` is the `next_cursor` of the previous page.
        However many transfers share the event id, each page costs one bounded query.
        """
        return await self._live.reads.transfers_by_event_id(
            event_id, owner_id=owner_id, after=after, limit=limit
        )

    async def list_account_transfers(
        self,
        account_id: int | str,
        *,
        limit: int = 100,
        cursor: int | None = None,
        reversed_: bool = False,
    ) -> TransferPage:
        """An account's transfers from the engine, oldest first (or newest with `reversed_`).

        `cursor` is the `next_cursor` of the previous page (an engine timestamp).
        """
        return await self._live.reads.list_account_transfers(
            account_id, limit=limit, cursor=cursor, reversed_=reversed_
        )

    async def events(
        self, since: int = 0, *, poll_s: float = 0.5, limit: int = 1000
    ) -> AsyncIterator[AuditEvent]:
        """The durable tail of the audit log: every event after cursor `since`, forever.

        Resume after a restart by passing the `seq` of the last event handled. Each page is read
        through `store`, so the tail ends with `NotConnectedError` once the service is closed.
        """
        cursor = since
        while True:
            batch = await self.store.events_since(cursor, limit)
            for event in batch:
                cursor = event.seq
                yield event
            if len(batch) < limit:
                await asyncio.sleep(poll_s)

    # -- recovery and expiry --------------------------------------------------------------------

    async def recover(self, *, grace_s: float | None = None) -> RecoveryReport:
        """Resolve every intent without outcome, then record holds the engine has expired.

        For each page of the backlog: look the transfers up in the engine first; those found
        happened, and their outcome is recorded; the rest are resubmitted with the same ids and
        fields (chains whole, in order), and whatever the engine answers is recorded.
        """
        return await self._live.recovery.recover(grace_s=grace_s)

    async def apply_change_events(self, events: Sequence[ChangeEvent]) -> ChangeReport:
        """Record events of TigerBeetle's change stream (`tbledger.cdc`), each once: its
        balances, a hold's expiry, a transfer no tbledger intent asked for (``foreign_transfer``).
        At most `CDC_BATCH_EVENTS_MAX` at a time; acknowledge the messages after this returns."""
        return await self._live.changes.apply(events)

    async def latest_change_timestamp(self) -> int | None:
        """The engine timestamp of the latest change event recorded, None before the first."""
        return await self.store.latest_change_timestamp()

    async def engine_now_ns(self) -> int:
        """The engine's current time: the slot timestamp of a request that changes nothing.

        An account with id 0 is always refused (``id_must_not_be_zero``), and a refused event's
        result carries its slot: the engine's clock, never this machine's.
        """
        return await self._gateway.now_ns()

    async def expire_holds(self) -> int:
        """Record ``expired`` for holds whose timeout has passed by the engine's clock (a hold
        the engine holds a post or void of is recorded resolved instead); the number expired.
        Reads of a hold's status do the same for that hold, so this only saves them the work."""
        return await self._live.holds.expire_holds()

    # -- history, activity and statements (DESIGN §10; `_history`) ----------------------------

    async def balance_history(
        self,
        account_id: int | str,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        limit: int = 100,
        cursor: int | None = None,
        reversed_: bool = False,
    ) -> BalanceHistory:
        """The account's balance after each of its transfers in ``[start, end)``, from the
        engine, on its normal side, each with its transfer; it opens with zero at the account's
        creation. Oldest first (newest with `reversed_`); `cursor` is the previous page's
        `next_cursor`. `HistoryNotKeptError` for an account without the history flag."""
        return await self._live.history.balance_history(
            account_id, start=start, end=end, limit=limit, cursor=cursor, reversed_=reversed_
        )

    async def balance_as_of(self, account_id: int | str, *, as_of: TimeLike) -> BalanceAsOf:
        """The account's balance at `as_of` (an engine timestamp in ns, or an ISO 8601 time):
        zero before its first transfer, none (``existed`` False) before it was created."""
        return await self._live.history.balance_as_of(account_id, as_of=as_of)

    async def account_activity(
        self,
        account_id: int | str,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        code: int | None = None,
        counterparty_id: int | str | None = None,
        flow: str | None = None,
        status: str | None = None,
        limit: int = 100,
        cursor: int | None = None,
        reversed_: bool = False,
    ) -> ActivityPage:
        """The account's transfers in ``[start, end)`` with what the store knows of each
        (counterparty, flow and leg, payment and event ids, idempotency key, audit status, the
        captured amount of a posted hold), filtered by `code`, `counterparty_id`, `flow` and
        `status`, paged with `cursor`."""
        return await self._live.history.account_activity(
            account_id,
            start=start,
            end=end,
            code=code,
            counterparty_id=counterparty_id,
            flow=flow,
            status=status,
            limit=limit,
            cursor=cursor,
            reversed_=reversed_,
        )

    async def statement(
        self, account_id: int | str, *, start: TimeLike, end: TimeLike
    ) -> Statement:
        """The account's statement for ``[start, end)``: opening balance, every transfer with
        its effect and the running balance, closing balance; opening + lines == closing is
        checked (`InvariantViolationError` otherwise)."""
        return await self._live.history.statement(account_id, start=start, end=end)

    # -- discovery: reads of names and metadata, a page at a time (logic in _discovery) ----------

    async def list_accounts(
        self,
        *,
        account_type: AccountType | str | None = None,
        ledger: int | None = None,
        status: AccountStatus | str | None = None,
        owner_id: str | None = None,
        after: int | str | None = None,
        limit: int = LISTING_PAGE_ROWS_DEFAULT,
    ) -> AccountRecordPage:
        """A page of account mappings meeting every filter given, in id order; no filter lists
        every account, the platform's own among them. `after` is the previous page's
        `next_cursor`. No engine read: balances are the caller's to add (`get_balances`)."""
        return await account_page(
            self.store,
            limit=limit,
            account_type=account_type,
            ledger=ledger,
            status=status,
            owner_id=owner_id,
            after=after,
        )

    async def transfers_by_metadata(
        self,
        metadata: Mapping[str, str],
        *,
        event_id: str | None = None,
        owner_id: str | None = None,
        after: int | str | None = None,
        limit: int = LISTING_PAGE_ROWS_DEFAULT,
    ) -> IntentPage:
        """A page of the transfers whose metadata holds every key/value pair of `metadata`
        (string values, exactly), in id order; with `owner_id`, only those touching that owner's
        accounts, and with `event_id`, only that event's. `after` is the previous page's
        `next_cursor`."""
        return await metadata_page(
            self.store,
            metadata,
            limit=limit,
            event_id=event_id,
            owner_id=owner_id,
            after=after,
        )


@dataclass(frozen=True, slots=True)
class _Rooms:
    """The collaborators of a connected service, each over the same store, gateway and bus."""

    accounts: Accounts
    statuses: AccountStatuses
    writer: Writer
    recovery: Recovery
    reads: Reads
    history: AccountHistory
    holds: Holds
    changes: Changes

    @classmethod
    def wire(
        cls,
        *,
        store: Store,
        gateway: EngineGateway,
        bus: EventBus,
        settings: Settings,
        chart: Chart,
        stats: dict[str, int],
    ) -> _Rooms:
        """Build the collaborators in dependency order: each is handed what it uses, and only
        that (the claims are the writer's, read by recovery; statuses are recorded by the
        recorder and read by the writer; accounts write through the writer; holds record
        through the recorder and are read by recovery and history)."""
        claims = Claims()
        statuses = AccountStatuses(store=store, bus=bus)
        recorder = Recorder(store=store, gateway=gateway, bus=bus, statuses=statuses, stats=stats)
        # Every read of a transfer's status goes through `holds`, and so does recovery's expiry
        # pass: one code path decides, from the engine, that a hold past its timeout expired.
        holds = Holds(store=store, gateway=gateway, recorder=recorder)
        recovery = Recovery(
            store=store,
            gateway=gateway,
            settings=settings,
            recorder=recorder,
            claims=claims,
            holds=holds,
        )
        writer = Writer(
            store=store,
            gateway=gateway,
            bus=bus,
            settings=settings,
            claims=claims,
            recorder=recorder,
            recovery=recovery,
            statuses=statuses,
        )
        accounts = Accounts(store=store, gateway=gateway, bus=bus, chart=chart, writes=writer)
        reads = Reads(store=store, gateway=gateway)
        # Balance history, as-of balances, activity and statements (DESIGN §10): handed the
        # store, the engine and the way to call it, the normal sides and the transfers'
        # statuses; not the service.
        history = AccountHistory(
            store=lambda: store,
            engine=lambda: gateway.client,
            call=gateway.call,
            sides=accounts.sides,
            statuses=holds.statuses,
            balances=store.change_balances,
            streamed=store.latest_change_timestamp,
        )
        # The change stream records expiries through `holds` too.
        changes = Changes(store=store, holds=holds)
        return cls(accounts, statuses, writer, recovery, reads, history, holds, changes)
