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
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

import tigerbeetle as tb

from tbledger.balances import (
    ACCOUNT_TYPE_CODES,
    AccountType,
    Balance,
    NormalSide,
    default_flags,
    normal_side,
)
from tbledger.chart import Chart
from tbledger.config import Settings
from tbledger.engine import EngineClient, connect
from tbledger.engine.batcher import Batcher
from tbledger.errors import (
    AccountNotFoundError,
    CircuitOpenError,
    DuplicateRecordError,
    IdempotencyConflictError,
    NotConnectedError,
    OutcomeUnknownError,
    PendingHoldsError,
    TbledgerError,
    TigerBeetleError,
    ValidationError,
)
from tbledger.events import EventBus, LedgerEvent, LedgerEventName, Listener
from tbledger.ids import format_id, parse_id
from tbledger.limits import (
    BATCH_EVENTS_MAX,
    CALL_DEADLINE_SLACK_S,
    PENDING_HOLDS_LISTED_MAX,
    STORE_PAGE_ROWS_MAX,
    U32_MAX,
    U64_MAX,
    WRITE_GROUPS_IN_FLIGHT_MAX,
    WRITE_KEY_LOOKUP_EVENTS_MIN,
)
from tbledger.model import (
    RESOLVED_KINDS,
    AccountRecord,
    AccountStatus,
    ApiKeyRecord,
    AuditEvent,
    EventKind,
    NewAuditEvent,
    TransferIntent,
    request_hash_of,
)
from tbledger.resilience import CircuitBreaker, CircuitState, RetryPolicy, retry, within_deadline
from tbledger.service._intents import (
    AMOUNT_MAX,
    PURPOSE,
    account_code_number,
    checked_amount,
    checked_object_id,
    checked_uint,
    control_intent,
    intent_of,
    known_account_type,
    ledger_number,
    link_chain,
    resolution_intent,
    whole_chains,
)
from tbledger.service._outcomes import (
    ACCOUNT_FROZEN,
    CLOSED_STATUSES,
    INSUFFICIENT_STATUSES,
    outcome_kind,
    result_from_event,
    status_name,
    transfer_error,
)
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
)
from tbledger.store import Store
from tbledger.store.records import validate_account

if TYPE_CHECKING:
    # Only a type here: tbledger.prices imports the flows, which import the service.
    from tbledger.prices import PriceRecords

__all__ = ["LedgerService"]

log = logging.getLogger("tbledger.service")

_T = TypeVar("_T")
_S = tb.CreateTransferStatus
_F = tb.TransferFlags

# Flag values as plain ints: IntFlag arithmetic costs microseconds per operation, and the write
# path does it for every transfer.
_LINKED = int(_F.LINKED)
_POST = int(_F.POST_PENDING_TRANSFER)
_VOID = int(_F.VOID_PENDING_TRANSFER)
_BALANCING_DEBIT = int(_F.BALANCING_DEBIT)
_BALANCING_CREDIT = int(_F.BALANCING_CREDIT)
# Transfers whose `amount` names a bound or a sentinel rather than what moved.
_INEXACT = _POST | _VOID | _BALANCING_DEBIT | _BALANCING_CREDIT
_RESOLUTION = _POST | _VOID
# The detail of most outcome events: shared, and read-only so that sharing it is safe.
_NO_DETAIL: Mapping[str, Any] = MappingProxyType({})


# -- the service ----------------------------------------------------------------------------------


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
            settings = settings.model_copy(update=overrides)
        self.settings = settings
        self._chart = chart if chart is not None else Chart.default()
        self._engine = engine
        self._store = store
        self._owns_engine = engine is None
        self._owns_store = store is None
        self._batcher: Batcher | None = None
        # Told of every engine request (operation, events, seconds): metrics read the batcher's
        # coalescing through it. Kept here so a replaced engine client keeps its observer.
        self._engine_observer: EngineObserver | None = None
        self._bus = EventBus()
        self._timeout_s = settings.request_timeout_ms / 1000
        self._retry = RetryPolicy(
            attempts_max=settings.retry_attempts_max,
            delay_initial_s=settings.retry_delay_ms / 1000,
            delay_max_s=settings.retry_delay_max_ms / 1000,
        )
        self._breaker = CircuitBreaker(
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout_s=settings.breaker_reset_timeout_s,
            probe=self._probe_engine,
        )
        # Transfers submitted by this process and not yet resolved: a replay of the same id or
        # idempotency key waits for the original instead of submitting it a second time.
        self._inflight: dict[int, _Inflight] = {}
        # Transfers whose caller stopped waiting (a deadline, a cancellation) while the writer
        # still holds them: told "outcome unknown", never "refused" (see `_submit`). And those
        # the writer is recording as refused by the open circuit, whose callers are told so.
        self._abandoned: set[int] = set()
        self._refusing: set[int] = set()
        # Calls waiting for a writer (`_enqueue`); the writer tasks; whether one of them is
        # taking a group or persisting its intents (the next group waits for that step only).
        self._write_queue: collections.deque[_WriteCall] = collections.deque()
        self._writers: set[asyncio.Task[None]] = set()
        self._persisting = False
        self._account_sides: dict[int, NormalSide] = {}
        self._control_accounts: dict[int, int] = {}
        self._engine_now_ns = 0
        self._background: set[asyncio.Task[Any]] = set()
        self._recovery_task: asyncio.Task[None] | None = None
        self._connected = False
        # Counters for metrics and tests.
        self.stats: dict[str, int] = {"audit_write_failures": 0, "outcome_unknown": 0}

    # -- lifecycle ------------------------------------------------------------------------------

    async def connect(self, *, recover: bool = True, background: bool = False) -> None:
        """Connect the store (migrating it) and the engine, then run `recover()` once.

        `background=True` also runs recovery and hold expiry every `recovery_interval_s`.
        """
        if self._connected:
            return
        if self._store is None:
            self._store = await Store.connect(
                self.settings.database_url,
                migrate=self.settings.migrate,
                options=self.settings.store_options(),
            )
        if self._engine is None:
            self._engine = await connect(self.settings.engine_config().url)
        self._batcher = Batcher(self._engine)
        self._batcher.observer = self._engine_observer
        self._connected = True
        if recover:
            await self.recover()
        if background:
            self._recovery_task = asyncio.create_task(self._recovery_loop())

    async def close(self) -> None:
        """Stop background work, wait for listeners, close the engine and the store."""
        if self._recovery_task is not None:
            self._recovery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery_task
            self._recovery_task = None
        if self._background:
            await asyncio.gather(*tuple(self._background), return_exceptions=True)
        await self._bus.drain()
        self._connected = False
        if self._owns_engine and self._engine is not None:
            with contextlib.suppress(Exception):
                await self._engine.close()
            self._engine = None
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
    def store(self) -> Store:
        if self._store is None or not self._connected:
            raise NotConnectedError("the ledger service is not connected", code="not_connected")
        return self._store

    @property
    def batcher(self) -> Batcher:
        if self._batcher is None or not self._connected:
            raise NotConnectedError("the ledger service is not connected", code="not_connected")
        return self._batcher

    @property
    def engine(self) -> EngineClient:
        if self._engine is None or not self._connected:
            raise NotConnectedError("the ledger service is not connected", code="not_connected")
        return self._engine

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

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
        self._engine_observer = observer
        if self._batcher is not None:
            self._batcher.observer = observer

    async def health_check(self) -> Health:
        """Engine and store reachability, engine latency, and the breaker's state."""
        detail: dict[str, str] = {}
        engine_ok, latency_ms = False, None
        started = time.perf_counter()
        try:
            await within_deadline(self.engine.lookup_accounts([]), self._timeout_s)
            engine_ok, latency_ms = True, (time.perf_counter() - started) * 1000
        except Exception as exc:
            detail["engine"] = f"{type(exc).__name__}: {exc}"
        store_ok = False
        try:
            await self.store.ping()
            store_ok = True
        except Exception as exc:
            detail["store"] = f"{type(exc).__name__}: {exc}"
        return Health(engine_ok, store_ok, self._breaker.state, latency_ms, detail)

    # -- engine calls ---------------------------------------------------------------------------

    async def _probe_engine(self) -> None:
        await within_deadline(self.engine.lookup_accounts([]), self._timeout_s)

    async def _call(
        self,
        make: Callable[[], Awaitable[_T]],
        *,
        on_late_result: Callable[[asyncio.Future[_T]], None] | None = None,
    ) -> _T:
        """One engine call through the breaker, with retries of client faults, in a deadline.

        The deadline covers the whole call; when it passes, the request keeps running (it cannot
        be taken back) and `on_late_result` receives it when it completes.
        """
        await self._breaker.before_call()

        async def attempt() -> _T:
            try:
                return await make()
            except tb.ClientEvictedError:
                await self._replace_engine_client()
                raise

        try:
            result = await within_deadline(
                retry(attempt, self._retry, retryable=_retryable_fault),
                self._timeout_s,
                on_late_result=on_late_result,
            )
        except (OutcomeUnknownError, tb.ClientEvictedError, tb.ClientClosedError):
            self._breaker.record_failure()
            raise
        self._breaker.record_success()
        return result

    async def _replace_engine_client(self) -> None:
        """After eviction the client is dead: build a new one for the same engine."""
        if not self._owns_engine:
            return
        log.warning("engine client evicted; connecting a new one")
        self._engine = await connect(self.settings.engine_config().url)
        self._batcher = Batcher(self._engine)
        self._batcher.observer = self._engine_observer

    def _observe_timestamps(self, results: Iterable[tb.CreateTransferResult]) -> None:
        for result in results:
            self._engine_now_ns = max(self._engine_now_ns, result.timestamp)

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
        ledger = ledger_number(self._chart, ledger)
        if ledger == 0:
            raise ValidationError("ledger must not be 0")
        if code is None:
            code = (
                ACCOUNT_TYPE_CODES.get(AccountType(account_type), 0)
                if known_account_type(account_type)
                else 0
            )
        code = account_code_number(self._chart, code)
        if code == 0:
            raise ValidationError(f"code is required for account type {account_type!r}")
        new_id = tb.id() if account_id is None else checked_object_id("account_id", account_id)
        engine_flags = default_flags(account_type) if flags is None else tb.AccountFlags(flags)
        if engine_flags & (tb.AccountFlags.LINKED | tb.AccountFlags.IMPORTED):
            raise ValidationError("linked and imported accounts are created through the engine")
        account = tb.Account(
            id=new_id,
            ledger=ledger,
            code=code,
            flags=engine_flags,
            user_data_128=checked_uint("user_data_128", user_data_128, AMOUNT_MAX),
            user_data_64=checked_uint("user_data_64", user_data_64, U64_MAX),
            user_data_32=checked_uint("user_data_32", user_data_32, U32_MAX),
        )
        record = AccountRecord(
            id=new_id,
            account_type=account_type,
            ledger=ledger,
            code=code,
            owner_id=owner_id,
            name=name,
            metadata=dict(metadata or {}),
            control=dict(control or {}),
            flow_ref=flow_ref,
        )
        store = self.store
        # Validate the mapping before the engine sees anything.
        validate_account(record)
        (result,) = await self._call(lambda: self.batcher.create_accounts([account]))
        if result.status not in (tb.CreateAccountStatus.CREATED, tb.CreateAccountStatus.EXISTS):
            raise TigerBeetleError(
                f"the engine refused account {format_id(new_id)}: {result.status.name.lower()}",
                code=result.status.name.lower(),
                details={"account_id": format_id(new_id)},
            )
        try:
            (stored,) = await store.create_accounts([record])
        except DuplicateRecordError:
            existing = await store.get_account(new_id)
            if existing is None or (
                existing.account_type,
                existing.ledger,
                existing.code,
                existing.owner_id,
            ) != (account_type, ledger, code, owner_id):
                raise
            stored = existing
        else:
            self._bus.emit(
                [
                    LedgerEvent(
                        LedgerEventName.ACCOUNT_CREATED,
                        new_id,
                        {"account_type": account_type, "owner_id": owner_id, "ledger": ledger},
                    )
                ]
            )
        self._account_sides[new_id] = normal_side(account_type)
        return AccountInfo(stored)

    async def get_account(self, account_id: int | str) -> AccountInfo:
        """The account's mapping and its balance from the engine."""
        account_id = parse_id(account_id)
        record = await self.store.get_account(account_id)
        if record is None:
            raise AccountNotFoundError(
                f"no account {format_id(account_id)}",
                code="account_not_found",
                details={"account_id": format_id(account_id)},
            )
        (balance,) = await self._balances([record])
        return AccountInfo(record, balance)

    async def get_account_record(self, account_id: int | str) -> AccountRecord | None:
        """The account's mapping (type, owner, status, control facts) from the store, or None;
        no engine read."""
        return await self.store.get_account(checked_object_id("account_id", account_id))

    async def get_account_records(
        self, account_ids: Iterable[int | str]
    ) -> dict[int, AccountRecord]:
        """The mappings of the known accounts among `account_ids`, by id; no engine read."""
        return await self.store.get_accounts(
            [checked_object_id("account_id", a) for a in account_ids]
        )

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
        records = await self.store.get_accounts_by_owner(owner_id)
        balances = await self._balances(records)
        return [AccountInfo(r, b) for r, b in zip(records, balances, strict=True)]

    async def get_balance(self, account_id: int | str) -> Balance:
        """The account's balance, on its normal side, from the engine."""
        (balance,) = await self.get_balances([account_id])
        return balance

    async def get_balances(self, account_ids: Sequence[int | str]) -> list[Balance]:
        """Balances of several accounts in one engine request; unknown ids raise."""
        ids = [parse_id(a) for a in account_ids]
        if len(ids) > BATCH_EVENTS_MAX:
            raise ValidationError(f"at most {BATCH_EVENTS_MAX} accounts per call")
        sides = await self._sides(ids)
        accounts = await self._call(lambda: self.engine.lookup_accounts(ids))
        by_id = {a.id: a for a in accounts}
        out = []
        for account_id in ids:
            found = by_id.get(account_id)
            if found is None:
                raise AccountNotFoundError(
                    f"no account {format_id(account_id)} in the engine",
                    code="account_not_found",
                    details={"account_id": format_id(account_id)},
                )
            out.append(Balance.of(found, sides[account_id]))
        return out

    async def _balances(self, records: Sequence[AccountRecord]) -> list[Balance | None]:
        if not records:
            return []
        ids = [r.id for r in records]
        accounts = await self._call(lambda: self.engine.lookup_accounts(ids))
        by_id = {a.id: a for a in accounts}
        out: list[Balance | None] = []
        for r in records:
            self._account_sides[r.id] = normal_side(r.account_type)
            found = by_id.get(r.id)
            out.append(None if found is None else Balance.of(found, normal_side(r.account_type)))
        return out

    async def _sides(self, ids: Sequence[int]) -> dict[int, NormalSide]:
        """Normal sides by account id; account types never change, so they are cached."""
        missing = [i for i in ids if i not in self._account_sides]
        if missing:
            records = await self.store.get_accounts(missing)
            for account_id in missing:
                record = records.get(account_id)
                self._account_sides[account_id] = (
                    NormalSide.CREDIT if record is None else normal_side(record.account_type)
                )
        return {i: self._account_sides[i] for i in ids}

    async def _control_account(self, ledger: int) -> int:
        """The ledger's control account, counterparty of freeze and close transfers."""
        cached = self._control_accounts.get(ledger)
        if cached is not None:
            return cached
        name = f"system:control:{ledger}"
        record = await self.store.get_account_by_name(name)
        if record is None:
            try:
                info = await self.create_account(
                    owner_id=None,
                    account_type=AccountType.CONTROL,
                    ledger=ledger,
                    name=name,
                    control={"system": True, "role": "control"},
                )
                record = info.record
            except DuplicateRecordError:
                record = await self.store.get_account_by_name(name)
                if record is None:
                    raise
        self._control_accounts[ledger] = record.id
        return record.id

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
        account_id = parse_id(account_id)
        try:
            target = AccountStatus(status)
        except ValueError as exc:
            raise ValidationError(
                f"unknown account status {status!r}: use active, frozen or closed"
            ) from exc
        record = await self.store.get_account(account_id)
        if record is None:
            raise AccountNotFoundError(
                f"no account {format_id(account_id)}",
                code="account_not_found",
                details={"account_id": format_id(account_id)},
            )
        if record.status is target:
            return AccountInfo(record)
        if record.status is AccountStatus.CLOSED:
            raise ValidationError(f"account {format_id(account_id)} is closed for good")
        if target is AccountStatus.CLOSED:
            await self._refuse_pending_holds(record)
        control = await self._control_account(record.ledger)
        requests: list[TransferIntent] = []
        ledger = record.ledger
        if record.status is AccountStatus.FROZEN and record.freeze_transfer_id is not None:
            requests.append(
                control_intent(
                    purpose="unfreeze",
                    account_id=account_id,
                    flags=_F.VOID_PENDING_TRANSFER,
                    pending_id=record.freeze_transfer_id,
                    ledger=ledger,
                )
            )
        if target is AccountStatus.FROZEN:
            requests.append(
                control_intent(
                    purpose="freeze",
                    account_id=account_id,
                    flags=_F.PENDING | _F.CLOSING_DEBIT,
                    debit=account_id,
                    credit=control,
                    ledger=ledger,
                )
            )
        elif target is AccountStatus.CLOSED:
            destination = control if sweep_to is None else checked_object_id("sweep_to", sweep_to)
            if normal_side(record.account_type) is NormalSide.CREDIT:
                sweep = control_intent(
                    purpose="sweep",
                    account_id=account_id,
                    flags=_F.BALANCING_DEBIT,
                    debit=account_id,
                    credit=destination,
                    ledger=ledger,
                    amount=AMOUNT_MAX,
                )
            else:
                sweep = control_intent(
                    purpose="sweep",
                    account_id=account_id,
                    flags=_F.BALANCING_CREDIT,
                    debit=destination,
                    credit=account_id,
                    ledger=ledger,
                    amount=AMOUNT_MAX,
                )
            requests.append(sweep)
            requests.append(
                control_intent(
                    purpose="close",
                    account_id=account_id,
                    flags=_F.PENDING | _F.CLOSING_DEBIT,
                    debit=account_id,
                    credit=control,
                    ledger=ledger,
                )
            )
        results = await self._write(requests, atomic=len(requests) > 1)
        failed = [r for r in results if not r.ok]
        if failed:
            first = next((r for r in failed if r.status != "linked_event_failed"), failed[0])
            raise transfer_error(first, None, None)
        updated = await self.store.get_account(account_id)
        if updated is None:  # pragma: no cover - the account was read above
            raise AccountNotFoundError(f"no account {format_id(account_id)}")
        return AccountInfo(updated)

    async def _refuse_pending_holds(self, record: AccountRecord) -> None:
        """Raise `PendingHoldsError` if holds on the account (other than its own freeze) are
        still pending by the engine's clock."""
        holds = await self.store.pending_holds_of(record.id, limit=PENDING_HOLDS_LISTED_MAX)
        holds = [(h, at) for h, at in holds if h.id != record.freeze_transfer_id]
        if not holds:
            return
        now_ns = await self.engine_now_ns()
        live = [
            h
            for h, created_ns in holds
            if h.timeout == 0
            or created_ns is None
            or created_ns + h.timeout * 1_000_000_000 > now_ns
        ]
        if live:
            raise PendingHoldsError(
                f"account {format_id(record.id)} has {len(live)} pending hold(s)"
                f"{'' if len(holds) < PENDING_HOLDS_LISTED_MAX else ' or more'}: void, post or "
                "let them expire before closing it",
                code="pending_holds",
                details={
                    "account_id": format_id(record.id),
                    "hold_ids": [format_id(h.id) for h in live],
                },
            )

    async def _apply_control_outcomes(self, intents: Sequence[TransferIntent]) -> None:
        """Record account status changes that the engine just made effective.

        Runs for every recorded outcome, in the normal path and in recovery, so a crash between
        the engine and the store is repaired by `recover()`.
        """
        closing = {
            i.control.get("account_id") for i in intents if i.control.get(PURPOSE) == "close"
        }
        for intent in intents:
            # Only the service writes `control`, and only with the control transfer code, which
            # no caller may use; a caller's metadata is never read here (DESIGN §9).
            purpose = intent.control.get(PURPOSE)
            account = intent.control.get("account_id")
            if purpose == "unfreeze" and account in closing:
                continue  # the first link of a close: the account goes from frozen to closed
            if purpose not in ("freeze", "unfreeze", "close") or not isinstance(account, str):
                continue
            account_id = parse_id(account)
            record = await self.store.get_account(account_id)
            if record is None:
                continue
            if purpose == "freeze":
                status, freeze_id = AccountStatus.FROZEN, intent.id
            elif purpose == "close":
                status, freeze_id = AccountStatus.CLOSED, intent.id
            else:
                if record.status is AccountStatus.CLOSED:
                    continue  # recovery of a close whose status was already recorded
                status, freeze_id = AccountStatus.ACTIVE, None
            if (record.status, record.freeze_transfer_id) == (status, freeze_id):
                continue
            await self.store.update_account_status(account_id, status, freeze_id)
            self._bus.emit(
                [
                    LedgerEvent(
                        LedgerEventName.ACCOUNT_STATUS_CHANGED,
                        account_id,
                        {"status": status.value, "previous": record.status.value},
                    )
                ]
            )

    # -- transfers ------------------------------------------------------------------------------

    async def create_transfer(
        self, request: TransferRequest | None = None, /, **fields: Unpack[TransferFields]
    ) -> TransferResult:
        """Create one transfer, given as a `TransferRequest` or as its fields by keyword; raise
        a typed error if the engine refuses it. `ledger` and `code` may be chart names."""
        req = _request_of(request, fields)
        return await self._single(intent_of(req, pending=req.pending, chart=self._chart))

    async def create_pending_transfer(
        self, request: TransferRequest | None = None, /, **fields: Unpack[TransferFields]
    ) -> TransferResult:
        """Create a two-phase hold (`timeout` in seconds, 0 = none); arguments as
        `create_transfer`."""
        req = _request_of(request, fields)
        return await self._single(intent_of(req, pending=True, chart=self._chart))

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
        return await self._single(intent)

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
        return await self._single(intent)

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
        intents = [intent_of(r, pending=r.pending, chart=chart) for r in requests]
        if control is not None:
            if len(control) != len(intents):
                raise ValidationError("control needs one mapping per request")
            intents = [
                replace(intent, control=dict(facts)) if facts else intent
                for intent, facts in zip(intents, control, strict=True)
            ]
        return await self._write(intents, atomic=atomic)

    async def create_pending_transfers(
        self, requests: Sequence[TransferRequest], *, atomic: bool = False
    ) -> list[TransferResult]:
        """Create many holds; as `create_transfers`."""
        intents = [intent_of(r, pending=True, chart=self._chart) for r in requests]
        return await self._write(intents, atomic=atomic)

    async def resolve_pending_transfers(
        self, resolutions: Sequence[PendingResolution], *, atomic: bool = True
    ) -> list[TransferResult]:
        """Post or void several holds: one result per resolution, in order; errors are returned.

        `atomic=True` (the default) links them into one chain, so all or none resolve (at most
        8189). Each goes through the same write path as `post_pending_transfer`: persisted
        intent, audit events, idempotency key, recovery. `control` on a resolution is the
        platform's own facts, as in `create_transfers`: never a caller's input.
        """
        intents = [
            resolution_intent(
                r.pending_id,
                post=r.post,
                amount=(AMOUNT_MAX if r.amount is None else checked_amount(r.amount))
                if r.post
                else 0,
                transfer_id=r.transfer_id,
                idempotency_key=r.idempotency_key,
                event_id=r.event_id,
                payment_id=r.payment_id,
                metadata=r.metadata,
                control=r.control,
            )
            for r in resolutions
        ]
        return await self._write(intents, atomic=atomic and len(intents) > 1)

    async def _single(self, intent: TransferIntent) -> TransferResult:
        (result,) = await self._write([intent], atomic=False)
        if result.ok:
            return result
        raise await self._error_for(result, intent)

    async def _error_for(self, result: TransferResult, intent: TransferIntent) -> TigerBeetleError:
        status = _S.__members__.get(result.status.upper())
        available: int | None = None
        if status in INSUFFICIENT_STATUSES:
            side_id = (
                intent.debit_account_id
                if status == _S.EXCEEDS_CREDITS
                else intent.credit_account_id
            )
            with contextlib.suppress(Exception):
                accounts = await self._call(lambda: self.engine.lookup_accounts([side_id]))
                if accounts:
                    a = accounts[0]
                    if status == _S.EXCEEDS_CREDITS:
                        available = a.credits_posted - a.debits_posted - a.debits_pending
                    else:
                        available = a.debits_posted - a.credits_posted - a.credits_pending
        frozen = False
        if status in CLOSED_STATUSES:
            frozen = (
                await self.refusal_code(
                    result.status,
                    debit_account_id=intent.debit_account_id,
                    credit_account_id=intent.credit_account_id,
                )
                == ACCOUNT_FROZEN
            )
        return transfer_error(result, intent, available, frozen=frozen)

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
        closed = _S.__members__.get(status.upper())
        if closed not in CLOSED_STATUSES:
            return status
        account_id = (
            debit_account_id if closed == _S.DEBIT_ACCOUNT_ALREADY_CLOSED else credit_account_id
        )
        record = None
        with contextlib.suppress(TbledgerError):
            record = await self.store.get_account(account_id)
        if record is not None and record.status is AccountStatus.FROZEN:
            return ACCOUNT_FROZEN
        return status

    # -- the write path -------------------------------------------------------------------------

    async def _write(self, intents: list[TransferIntent], *, atomic: bool) -> list[TransferResult]:
        """Persist intents, submit them, record outcomes; one result per intent, in order."""
        if not intents:
            return []
        if atomic:
            if len(intents) > BATCH_EVENTS_MAX:
                raise ValidationError(f"an atomic batch holds at most {BATCH_EVENTS_MAX} transfers")
            intents = link_chain(intents)
        if not atomic and any(intent.flags & _LINKED for intent in intents):
            raise ValidationError("use atomic=True to link transfers")
        results: list[TransferResult] = []
        for start in range(0, len(intents), BATCH_EVENTS_MAX):
            results.extend(await self._write_chunk(intents[start : start + BATCH_EVENTS_MAX]))
        return results

    async def _write_chunk(self, intents: list[TransferIntent]) -> list[TransferResult]:
        keyed = any(i.idempotency_key is not None for i in intents)
        if keyed and not self.settings.audit:
            raise ValidationError("idempotency keys need the audit trail (audit=True)")
        if self._breaker.state is CircuitState.OPEN:
            # Fail before persisting anything: nothing would be submitted.
            await self._breaker.before_call()
        if keyed:
            intents = [_hashed(i) for i in intents]
            if len(intents) >= WRITE_KEY_LOOKUP_EVENTS_MIN:
                # A large keyed call is looked up before it is queued: a replay is answered here,
                # from the store in bulk, and never takes the writer that persists every other
                # key's intents.
                twins = await self._stored_twins(intents)
                if any(twin is not None for twin in twins):
                    return await self._write_replayed(intents, twins)
        # Claim the ids before the intents become visible in the store, so that a concurrent call
        # with the same id waits for this one instead of submitting or resolving it again. A
        # claim points at this call's future and the intent's place in it.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[TransferResult]] = loop.create_future()
        inflight = self._inflight
        own: list[TransferIntent] = []
        claimed: list[tuple[TransferIntent, _Inflight]] = []
        for intent in intents:
            entry = inflight.get(intent.id)
            if entry is None:
                inflight[intent.id] = _Inflight(intent, future, len(own))
                own.append(intent)
            else:
                claimed.append((intent, entry))
        # The caller's deadline covers the whole call: queueing behind another group, the store
        # and the engine. Past it the caller gets OutcomeUnknownError while the writer carries
        # on; the ids stay claimed until the writer settles them, so a retry with the same id or
        # key waits for that outcome instead of submitting the transfer again.
        deadline = loop.time() + self._timeout_s + CALL_DEADLINE_SLACK_S
        enqueued = False
        try:
            if own and claimed and intents[0].chain_id is not None:
                raise IdempotencyConflictError(
                    "part of this atomic batch is being submitted by another call",
                    code="idempotency_conflict",
                )
            for intent, entry in claimed:
                _check_same_request(intent, entry.intent)
            if not claimed:
                self._enqueue(own, future)
                enqueued = True
                return await _until(future, deadline, own)
            outcomes: dict[int, TransferResult] = {}
            if own:
                self._enqueue(own, future)
                enqueued = True
                # In order; a replayed key's result carries the original transfer's id.
                results = await _until(future, deadline, own)
                for intent, result in zip(own, results, strict=True):
                    outcomes[intent.id] = result
            for intent, entry in claimed:
                result = (await _until(entry.future, deadline, [intent]))[entry.index]
                outcomes[intent.id] = replace(result, replayed=True)
            return [outcomes[i.id] for i in intents]
        except OutcomeUnknownError:
            if enqueued and not future.done() and own[0].id in self._refusing:
                # The writer is recording these as refused by the open circuit (never submitted):
                # that, not "unknown", is what this caller must be told.
                await asyncio.wait({future})
            if enqueued and future.done() and not future.cancelled() and future.exception():
                raise future.exception() from None  # type: ignore[misc]
            self._abandon(own, future)
            own = []
            raise
        except BaseException as exc:
            if enqueued and not future.done():
                self._abandon(own, future)
                own = []
            else:
                _fail(future, exc)
            raise
        finally:
            self._unclaim(own, future)

    def _abandon(
        self, own: list[TransferIntent], future: asyncio.Future[list[TransferResult]]
    ) -> None:
        """The caller stopped waiting (a deadline, a cancellation) while the writer carries on:
        the writer settles the future, for anyone waiting on these ids, and only then are the
        claims released. Until then these transfers must not be recorded as refused by the
        circuit: the caller was not told so, and recovery is to settle them."""
        if future.done():
            self._unclaim(own, future)
            return
        ids = [i.id for i in own]
        self._abandoned.update(ids)

        def settled(done: asyncio.Future[list[TransferResult]]) -> None:
            self._abandoned.difference_update(ids)
            self._unclaim(own, done)

        future.add_done_callback(settled)

    def _unclaim(
        self, intents: list[TransferIntent], future: asyncio.Future[list[TransferResult]]
    ) -> None:
        inflight = self._inflight
        for intent in intents:
            entry = inflight.get(intent.id)
            if entry is not None and entry.future is future:
                del inflight[intent.id]

    def _enqueue(
        self, intents: list[TransferIntent], future: asyncio.Future[list[TransferResult]]
    ) -> None:
        """Queue one call's intents for a writer; concurrent calls are written as one group.

        A writer takes every queued call that fits in one engine request, persists the group's
        intents in one INSERT, submits them as one engine request and records the outcomes in
        one INSERT (DESIGN §6). Groups are pipelined: once a group's intents are persisted, the
        next group may start persisting while this one is with the engine (at most
        WRITE_GROUPS_IN_FLIGHT_MAX groups in flight). `future` is settled by the writer; a caller
        that stops waiting does not stop the write.
        """
        self._write_queue.append(_WriteCall(intents, future))
        self._start_writer()

    def _start_writer(self) -> None:
        """Start a writer for the queue unless one is already taking or persisting a group."""
        if self._persisting or not self._write_queue:
            return
        if len(self._writers) >= WRITE_GROUPS_IN_FLIGHT_MAX:
            return  # a writer finishing its group looks at the queue again
        self._persisting = True
        task = asyncio.create_task(self._drain_writes())
        self._writers.add(task)
        task.add_done_callback(self._writer_done)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        self._writers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a transfer writer failed", exc_info=task.exception())
        self._start_writer()

    def _persisted(self, stage: _Stage) -> None:
        """A writer's intents are persisted (or failed to be): the next group may start."""
        if stage.persisted:
            return
        stage.persisted = True
        self._persisting = False
        self._start_writer()

    async def _drain_writes(self) -> None:
        """Write one group of queued calls (a writer per group; see `_enqueue`)."""
        queue = self._write_queue
        stage = _Stage()
        try:
            call = queue.popleft()
        except IndexError:
            self._persisted(stage)
            return
        group = [call]
        size = len(call.intents)
        while queue and size + len(queue[0].intents) <= BATCH_EVENTS_MAX:
            call = queue.popleft()
            size += len(call.intents)
            group.append(call)
        try:
            if not self.settings.audit:
                self._persisted(stage)  # nothing to persist
                await self._write_group_unaudited(group)
            elif len(group) == 1:
                await _settle(group[0].future, self._write_isolated(group[0].intents, stage))
            else:
                await self._write_group(group, stage)
        finally:
            self._persisted(stage)

    async def _write_group(self, group: list[_WriteCall], stage: _Stage) -> None:
        """Several calls' intents as one INSERT, one engine request and one outcome INSERT."""
        intents = [i for call in group for i in call.intents]
        try:
            await self.store.insert_intents(intents, returning=False)
        except DuplicateRecordError:
            # A call in the group replays a stored id or key: settle each call on its own.
            for call in group:
                await _settle(call.future, self._write_isolated(call.intents, stage))
            return
        except Exception as exc:
            for call in group:
                _fail(call.future, exc)
            return
        self._persisted(stage)
        try:
            results = await self._submit(intents)
        except Exception as exc:
            for call in group:
                _fail(call.future, exc)
            return
        _hand_out(group, results)

    async def _write_group_unaudited(self, group: list[_WriteCall]) -> None:
        """Audit off: straight to the engine; outcomes are returned and emitted, not stored."""
        intents = group[0].intents if len(group) == 1 else [i for c in group for i in c.intents]
        try:
            engine_results = await self._create_transfers([i.to_transfer() for i in intents])
        except Exception as exc:
            for call in group:
                _fail(call.future, exc)
            return
        self._observe_timestamps(engine_results)
        results = [
            TransferResult(i.id, status_name(r.status), r.timestamp)
            for i, r in zip(intents, engine_results, strict=True)
        ]
        if self._bus.listening:
            self._bus.emit(
                [
                    LedgerEvent(outcome_kind(i, r)[1], i.id, {"status": r.status})
                    for i, r in zip(intents, results, strict=True)
                ]
            )
        _hand_out(group, results)

    async def _write_isolated(
        self, intents: list[TransferIntent], stage: _Stage
    ) -> list[TransferResult]:
        """One call on its own: persist (telling replays apart), submit, record."""
        fresh, replays = await self._persist(intents)
        self._persisted(stage)
        outcomes: dict[int, TransferResult] = {}
        if fresh:
            if len(fresh) == len(intents):
                return await self._submit(fresh)
            for result in await self._submit(fresh):
                outcomes[result.id] = result
        if replays:
            for (intent, _), result in zip(replays, await self._replays(replays), strict=True):
                outcomes[intent.id] = result
        return [outcomes[i.id] for i in intents]

    async def _persist(
        self, intents: list[TransferIntent]
    ) -> tuple[list[TransferIntent], list[tuple[TransferIntent, TransferIntent]]]:
        """Insert the intents; split out the ones that are replays of stored intents.

        A replay is an intent whose id or idempotency key is already stored with the same
        request; the same key or id with a different request is an `IdempotencyConflictError`.
        """
        store = self.store
        try:
            await store.insert_intents(intents, returning=False)
            return intents, []
        except DuplicateRecordError:
            pass
        fresh: list[TransferIntent] = []
        replays: list[tuple[TransferIntent, TransferIntent]] = []
        for intent, previous in zip(intents, await self._stored_twins(intents), strict=True):
            if previous is None:
                fresh.append(intent)
            else:
                replays.append((intent, previous))
        if fresh and replays and any(i.chain_id is not None for i in intents):
            raise IdempotencyConflictError(
                "part of this atomic batch was already submitted with other transfers",
                code="idempotency_conflict",
            )
        if fresh:
            try:
                await store.insert_intents(fresh, returning=False)
            except DuplicateRecordError as exc:
                raise IdempotencyConflictError(
                    "a concurrent request took one of these ids or keys; retry the call",
                    code="idempotency_conflict",
                ) from exc
        return fresh, replays

    async def _stored_twins(self, intents: Sequence[TransferIntent]) -> list[TransferIntent | None]:
        """The stored intent each of these replays (same key, else same id), or None; or a
        conflict. One query by key and one by id for the whole call, however large."""
        keys = [i.idempotency_key for i in intents if i.idempotency_key is not None]
        by_key = await self.store.find_by_idempotency_keys(keys) if keys else {}
        twins: list[TransferIntent | None] = []
        for intent in intents:
            key = intent.idempotency_key
            previous = None if key is None else by_key.get(key)
            if previous is not None and previous.request_hash != intent.request_hash:
                raise IdempotencyConflictError(
                    f"idempotency key {key!r} was used for another request",
                    code="idempotency_conflict",
                    details={"idempotency_key": key},
                )
            twins.append(previous)
        unmatched = [i.id for i, twin in zip(intents, twins, strict=True) if twin is None]
        by_id = await self.store.get_intents(unmatched) if unmatched else {}
        if by_id:
            for k, intent in enumerate(intents):
                previous = by_id.get(intent.id)
                if twins[k] is None and previous is not None:
                    _check_same_request(intent, previous)
                    twins[k] = previous
        return twins

    async def _write_replayed(
        self, intents: list[TransferIntent], twins: list[TransferIntent | None]
    ) -> list[TransferResult]:
        """A call found to replay stored transfers before it was queued: the replays are answered
        from the store in bulk, outside the writer, within the call's deadline; the rest is
        written as a call of its own. Results in the call's order."""
        replays = [(i, twin) for i, twin in zip(intents, twins, strict=True) if twin is not None]
        fresh = [i for i, twin in zip(intents, twins, strict=True) if twin is None]
        if fresh and any(i.chain_id is not None for i in intents):
            raise IdempotencyConflictError(
                "part of this atomic batch was already submitted with other transfers",
                code="idempotency_conflict",
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s + CALL_DEADLINE_SLACK_S
        # A caller that stops waiting (the deadline, a cancellation) leaves the work running: it
        # may be settling unresolved originals with the engine, which must not be cut short.
        work = asyncio.ensure_future(self._replays(replays))
        self._background.add(work)
        work.add_done_callback(_retire(self._background))
        replayed = await _until(work, deadline, [previous for _, previous in replays])
        outcomes = {i.id: r for (i, _), r in zip(replays, replayed, strict=True)}
        if fresh:
            for intent, result in zip(fresh, await self._write_chunk(fresh), strict=True):
                outcomes[intent.id] = result
        return [outcomes[i.id] for i in intents]

    async def _replays(
        self, replays: Sequence[tuple[TransferIntent, TransferIntent]]
    ) -> list[TransferResult]:
        """The original outcomes of replayed requests, in order: waiting for those still in
        flight, then one read of the latest events of the rest (their histories only where the
        latest is not the outcome of creating the transfer), then settling in one go those that
        never had an outcome (a crash, a deadline), with the same ids and fields."""
        found: dict[int, TransferResult] = {}
        stored: dict[int, TransferIntent] = {}
        for intent, previous in replays:
            waiting = self._inflight.get(previous.id)
            # A claim holding this very intent is this call's own (same id: the original
            # submission is over); another call's claim is waited for.
            if waiting is not None and waiting.intent is not intent:
                result = (await asyncio.shield(waiting.future))[waiting.index]
                found[previous.id] = replace(result, replayed=True)
            else:
                stored.setdefault(previous.id, previous)
        stored_ids = [t for t in stored if t not in found]
        latest = await self.store.current_status(stored_ids) if stored_ids else {}
        # The latest event is usually the transfer's own outcome; a hold resolved since (or an
        # outcome recorded out of order) needs its history, read for all such at once.
        own = {
            t: e
            for t in stored_ids
            if (e := latest.get(t)) is not None and _own_outcome([e]) is not None
        }
        others = [t for t in stored_ids if t not in own]
        if others:
            histories = await self.store.transfer_audits(others)
            for t in others:
                event = _own_outcome(histories.get(t, []))
                if event is not None:
                    own[t] = event
        for t, event in own.items():
            found[t] = result_from_event(t, event, replayed=True)
        unresolved = [stored[t] for t in stored_ids if t not in own]
        if unresolved:
            for result in await self._resolve(unresolved):
                found[result.id] = replace(result, replayed=True)
        return [found[previous.id] for _, previous in replays]

    async def _submit(self, intents: list[TransferIntent]) -> list[TransferResult]:
        """Submit persisted intents and record their outcomes (steps 3-5)."""
        transfers = [i.to_transfer() for i in intents]

        def late(task: asyncio.Future[list[tb.CreateTransferResult]]) -> None:
            if task.cancelled() or task.exception() is not None:
                return  # left for recovery
            # Recovery or a replay may have recorded the outcome meanwhile: record the rest only.
            self._spawn(self._record(intents, task.result(), only_unresolved=True))

        try:
            engine_results = await self._call(
                lambda: self.batcher.create_transfers(transfers), on_late_result=late
            )
        except CircuitOpenError as exc:
            # The breaker refused before submitting: persisted but never submitted. Say so, so
            # that recovery does not submit it later, for the callers who are told so; a caller
            # that stopped waiting was told "unknown" instead, so its transfers stay without an
            # outcome and recovery submits them once the circuit closes.
            told = [i for i in intents if i.id not in self._abandoned]
            unknown = [i for i in intents if i.id in self._abandoned]
            refusing = {i.id for i in told}
            self._refusing.update(refusing)
            try:
                if told:
                    await self._record_not_submitted(told)
                if unknown:
                    await self._record_unknown(unknown, exc)
            finally:
                self._refusing.difference_update(refusing)
            raise
        except (OutcomeUnknownError, tb.ClientEvictedError, tb.ClientClosedError) as exc:
            await self._record_unknown(intents, exc)
            raise
        return await self._record(intents, engine_results)

    async def _record_not_submitted(self, intents: list[TransferIntent]) -> None:
        await self.store.append_events(
            [
                NewAuditEvent(
                    kind=EventKind.FAILED,
                    transfer_id=i.id,
                    status="circuit_open",
                    detail={"submitted": False},
                )
                for i in intents
            ]
        )

    async def _record_unknown(self, intents: list[TransferIntent], exc: BaseException) -> None:
        self.stats["outcome_unknown"] += len(intents)
        events = [
            NewAuditEvent(
                kind=EventKind.OUTCOME_UNKNOWN,
                transfer_id=i.id,
                detail={"error": type(exc).__name__},
            )
            for i in intents
        ]
        try:
            await self.store.append_events(events, returning=False)
        except Exception:
            self.stats["audit_write_failures"] += 1
            log.exception("could not record unknown outcomes; recovery will resolve them")
        if isinstance(exc, OutcomeUnknownError) and not exc.transfer_ids:
            exc.transfer_ids = [i.id for i in intents]

    async def _record(
        self,
        intents: Sequence[TransferIntent],
        engine_results: Sequence[tb.CreateTransferResult],
        *,
        only_unresolved: bool = False,
    ) -> list[TransferResult]:
        """Append outcome events for engine results, apply status changes, emit events."""
        self._observe_timestamps(engine_results)
        results = [
            TransferResult(i.id, status_name(r.status), r.timestamp)
            for i, r in zip(intents, engine_results, strict=True)
        ]
        await self._record_results(intents, results, only_unresolved=only_unresolved)
        return results

    async def _unresolved(
        self, intents: Sequence[TransferIntent], results: Sequence[TransferResult]
    ) -> tuple[list[TransferIntent], list[TransferResult]]:
        """The pairs whose transfer has no outcome recorded yet."""
        latest = await self.store.current_status([i.id for i in intents])
        keep = [
            (i, r)
            for i, r in zip(intents, results, strict=True)
            if (event := latest.get(i.id)) is None or _says_nothing(event)
        ]
        return [i for i, _ in keep], [r for _, r in keep]

    async def _resolved_amounts(
        self, intents: Sequence[TransferIntent], results: Sequence[TransferResult]
    ) -> dict[int, int]:
        """Amounts the engine actually moved, where the request did not say it exactly.

        A full post (AMOUNT_MAX), a void (0) and a balancing transfer (an upper bound) name a
        sentinel or a bound; the engine's record of the transfer holds the amount. Only those
        transfers are in the answer: every other one moved its `amount`.
        """
        ids = [
            i.id
            for i, r in zip(intents, results, strict=True)
            if i.flags & _INEXACT
            and r.ok
            and (i.flags & _INEXACT != _POST or i.amount == AMOUNT_MAX)
        ]
        amounts: dict[int, int] = {}
        if ids:
            wanted = set(ids)
            amounts = {i.id: i.amount for i in intents if i.id in wanted}
            with contextlib.suppress(Exception):
                for t in await self._lookup_transfers(ids):
                    amounts[t.id] = t.amount
        return amounts

    async def _record_results(
        self,
        intents: Sequence[TransferIntent],
        results: Sequence[TransferResult],
        *,
        only_unresolved: bool = False,
    ) -> None:
        if only_unresolved:
            intents, results = await self._unresolved(intents, results)
            if not intents:
                return
        amounts = await self._resolved_amounts(intents, results)
        listening = self._bus.listening
        events: list[NewAuditEvent] = []
        ledger_events: list[LedgerEvent] = []
        resolved_pending: dict[int, tuple[EventKind, TransferIntent, TransferResult]] = {}
        expired_pending: dict[int, TransferResult] = {}
        for intent, result in zip(intents, results, strict=True):
            kind, name = outcome_kind(intent, result)
            if amounts and intent.id in amounts:
                moved = amounts[intent.id]
                # Where the request named a bound or a sentinel (a balancing transfer, a full
                # post), the audit trail keeps the amount the engine actually moved.
                detail: Mapping[str, Any] = (
                    _NO_DETAIL if moved == intent.amount else {"amount": str(moved)}
                )
            else:
                moved = intent.amount
                detail = _NO_DETAIL
            events.append(
                NewAuditEvent(
                    kind=kind,
                    transfer_id=intent.id,
                    status=result.status,
                    engine_timestamp=result.timestamp,
                    detail=detail,
                )
            )
            if listening:
                ledger_events.append(
                    LedgerEvent(name, intent.id, {"status": result.status, "amount": moved})
                )
            if intent.flags & _RESOLUTION and result.ok:
                resolved_pending[intent.pending_id] = (kind, intent, result)
            elif result.status == "pending_transfer_expired":
                expired_pending[intent.pending_id] = result
        if resolved_pending or expired_pending:
            known = await self.store.current_status(list(resolved_pending) + list(expired_pending))
            for pending_id, (kind, intent, result) in resolved_pending.items():
                latest = known.get(pending_id)
                if latest is not None and latest.kind not in RESOLVED_KINDS:
                    moved = amounts.get(intent.id, intent.amount)
                    events.append(
                        NewAuditEvent(
                            kind=kind,
                            transfer_id=pending_id,
                            status=result.status,
                            engine_timestamp=result.timestamp,
                            detail={"by": format_id(intent.id), "amount": str(moved)},
                        )
                    )
            for pending_id, result in expired_pending.items():
                latest = known.get(pending_id)
                if latest is not None and latest.kind not in RESOLVED_KINDS:
                    events.append(
                        NewAuditEvent(
                            kind=EventKind.EXPIRED,
                            transfer_id=pending_id,
                            status="expired",
                            engine_timestamp=result.timestamp,
                            detail={"reported_by": format_id(result.id)},
                        )
                    )
                    ledger_events.append(LedgerEvent(LedgerEventName.TRANSFER_EXPIRED, pending_id))
        try:
            await self.store.append_events(events, returning=False)
        except Exception:
            # The engine has applied the transfers: report success, and let recovery write the
            # outcomes (it finds these intents without outcome and reads the engine first).
            self.stats["audit_write_failures"] += 1
            log.exception("could not record outcomes; recovery will")
            return
        if any(PURPOSE in i.control for i in intents if i.control):
            ok = [i for i, r in zip(intents, results, strict=True) if r.ok]
            if any(PURPOSE in i.control for i in ok):
                await self._apply_control_outcomes(ok)
        if ledger_events:
            self._bus.emit(ledger_events)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- reads ----------------------------------------------------------------------------------

    async def get_transfer(self, transfer_id: int | str) -> tb.Transfer | None:
        """The transfer as the engine holds it, or None."""
        transfer_id = parse_id(transfer_id)
        found = await self._call(lambda: self.engine.lookup_transfers([transfer_id]))
        return found[0] if found else None

    async def get_transfers(self, transfer_ids: Sequence[int | str]) -> list[tb.Transfer]:
        """The transfers the engine holds among `transfer_ids` (one request), in its order."""
        ids = [parse_id(t) for t in transfer_ids]
        if len(ids) > BATCH_EVENTS_MAX:
            raise ValidationError(f"at most {BATCH_EVENTS_MAX} transfers per call")
        if not ids:
            return []
        return await self._call(lambda: self.engine.lookup_transfers(ids))

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
        out."""
        return await self.store.current_status([parse_id(t) for t in transfer_ids])

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
        """The transfer's audit history, oldest first."""
        return await self.store.transfer_audit(parse_id(transfer_id))

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
        limit = checked_uint("limit", limit, STORE_PAGE_ROWS_MAX - 1)
        if limit == 0:
            raise ValidationError("limit must be at least 1")
        after_id = None if after is None else parse_id(after)
        # One row more than the page tells whether there is a next one.
        intents = await self.store.transfers_by_event_id_page(
            event_id, limit + 1, owner_id=owner_id, after_id=after_id
        )
        if len(intents) <= limit:
            return IntentPage(intents, None)
        return IntentPage(intents[:limit], intents[limit - 1].id)

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
        account = checked_object_id("account_id", account_id)
        limit = checked_uint("limit", limit, BATCH_EVENTS_MAX)
        if limit == 0:
            raise ValidationError("limit must be at least 1")
        ts_min, ts_max = 0, 0
        if cursor is not None:
            if reversed_:
                ts_max = checked_uint("cursor", cursor, U64_MAX)
            else:
                ts_min = checked_uint("cursor", cursor, U64_MAX)
        flags = tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS
        if reversed_:
            flags |= tb.AccountFilterFlags.REVERSED
        page_filter = tb.AccountFilter(
            account_id=account,
            user_data_128=0,
            user_data_64=0,
            user_data_32=0,
            code=0,
            timestamp_min=ts_min,
            timestamp_max=ts_max,
            limit=limit,
            flags=flags,
        )
        transfers = await self._call(lambda: self.engine.get_account_transfers(page_filter))
        next_cursor = None
        if len(transfers) == limit:
            last = transfers[-1].timestamp
            next_cursor = last - 1 if reversed_ else last + 1
        return TransferPage(transfers, next_cursor)

    async def events(
        self, since: int = 0, *, poll_s: float = 0.5, limit: int = 1000
    ) -> AsyncIterator[AuditEvent]:
        """The durable tail of the audit log: every event after cursor `since`, forever.

        Resume after a restart by passing the `seq` of the last event handled.
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
        report = RecoveryReport()
        grace = self.settings.recovery_grace_s if grace_s is None else grace_s
        created_before = datetime.now(UTC) - timedelta(seconds=grace)
        after: int | None = None
        while True:
            page = await self.store.intents_without_outcome(
                STORE_PAGE_ROWS_MAX, after_id=after, created_before=created_before
            )
            if not page:
                break
            after = page[-1].id
            page = [i for i in page if i.id not in self._inflight]
            report.examined += len(page)
            results = await self._resolve(page, report)
            report.failed += sum(1 for r in results if not r.ok)
        report.expired = await self.expire_holds()
        return report

    async def _resolve(
        self, intents: list[TransferIntent], report: RecoveryReport | None = None
    ) -> list[TransferResult]:
        """Settle intents of unknown outcome: read the engine first, resubmit the rest."""
        if not intents:
            return []
        # Whole chains: bring every member of each chain in.
        by_id = {i.id: i for i in intents}
        for chain_id in {i.chain_id for i in intents if i.chain_id is not None}:
            for member in await self.store.intents_in_chain(chain_id):
                by_id.setdefault(member.id, member)
        ids = list(by_id)
        found: dict[int, tb.Transfer] = {}
        for start in range(0, len(ids), BATCH_EVENTS_MAX):
            for t in await self._lookup_transfers(ids[start : start + BATCH_EVENTS_MAX]):
                found[t.id] = t
        happened = [by_id[i] for i in ids if i in found]
        missing = [by_id[i] for i in ids if i not in found]
        results: dict[int, TransferResult] = {}
        if happened:
            done = [TransferResult(i.id, "exists", found[i.id].timestamp) for i in happened]
            # Members of a chain may have outcomes already; record only what is missing.
            await self._record_results(happened, done, only_unresolved=True)
            results.update((r.id, r) for r in done)
        if report is not None:
            report.found_in_engine += len(happened)
            report.resubmitted += len(missing)
        # Resubmit, keeping chains together and in order.
        missing.sort(key=lambda i: (i.chain_id or i.id, i.chain_index or 0))
        position = 0
        while position < len(missing):
            group = whole_chains(missing[position:], BATCH_EVENTS_MAX)
            position += len(group)
            engine_results = await self._create_transfers([i.to_transfer() for i in group])
            for r in await self._record(group, engine_results, only_unresolved=True):
                results[r.id] = r
        return [results[i.id] for i in intents if i.id in results]

    async def _lookup_transfers(self, ids: list[int]) -> list[tb.Transfer]:
        return await self._call(lambda: self.engine.lookup_transfers(ids))

    async def _create_transfers(
        self, transfers: list[tb.Transfer]
    ) -> list[tb.CreateTransferResult]:
        return await self._call(lambda: self.batcher.create_transfers(transfers))

    async def engine_now_ns(self) -> int:
        """The engine's current time: the slot timestamp of a request that changes nothing.

        An account with id 0 is always refused (``id_must_not_be_zero``), and a refused event's
        result carries its slot: the engine's clock, never this machine's.
        """
        (result,) = await self._call(lambda: self.engine.create_accounts([tb.Account(id=0)]))
        self._engine_now_ns = max(self._engine_now_ns, result.timestamp)
        return self._engine_now_ns

    async def expire_holds(self) -> int:
        """Record ``expired`` for holds whose timeout has passed by the engine's clock."""
        now_ns = await self.engine_now_ns()
        expired = 0
        after: int | None = None
        while True:
            holds = await self.store.open_holds(STORE_PAGE_ROWS_MAX, after_id=after)
            if not holds:
                return expired
            after = holds[-1][0].id
            events = []
            ledger_events = []
            for intent, created_ns in holds:
                if created_ns is None:
                    continue
                expires_at = created_ns + intent.timeout * 1_000_000_000
                if expires_at <= now_ns:
                    events.append(
                        NewAuditEvent(
                            kind=EventKind.EXPIRED,
                            transfer_id=intent.id,
                            status="expired",
                            engine_timestamp=expires_at,
                            detail=_expiry_detail(intent, now_ns),
                        )
                    )
                    ledger_events.append(LedgerEvent(LedgerEventName.TRANSFER_EXPIRED, intent.id))
            if events:
                await self.store.append_events(events, returning=False)
                expired += len(events)
                self._bus.emit(ledger_events)

    async def _recovery_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.recovery_interval_s)
            try:
                await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recovery pass failed; trying again next interval")


# -- helpers --------------------------------------------------------------------------------------


def _retryable_fault(exc: BaseException) -> bool:
    """Client faults worth another attempt with the same ids (a new client after eviction)."""
    return isinstance(exc, tb.ClientEvictedError)


_NO_OUTCOME = frozenset({EventKind.SUBMITTED, EventKind.OUTCOME_UNKNOWN})


@dataclass(frozen=True, slots=True)
class _Inflight:
    """A transfer this process is submitting: its intent, and the future of its call's results
    with the transfer's place in them."""

    intent: TransferIntent
    future: asyncio.Future[list[TransferResult]]
    index: int


@dataclass(slots=True)
class _Stage:
    """Where one writer is: `persisted` once its group's intents are in the store."""

    persisted: bool = False


@dataclass(frozen=True, slots=True)
class _WriteCall:
    """One call's intents waiting for the writer, and the future of their results."""

    intents: list[TransferIntent]
    future: asyncio.Future[list[TransferResult]]


def _hashed(intent: TransferIntent) -> TransferIntent:
    if intent.idempotency_key is None or intent.request_hash is not None:
        return intent
    return replace(intent, request_hash=request_hash_of(intent))


def _check_same_request(intent: TransferIntent, previous: TransferIntent) -> None:
    """Refuse an id reused for a different transfer (IdempotencyConflictError)."""
    if previous.to_transfer() != intent.to_transfer():
        raise IdempotencyConflictError(
            f"transfer id {format_id(intent.id)} was used for another transfer",
            code="idempotency_conflict",
            details={"transfer_id": format_id(intent.id)},
        )


def _says_nothing(event: AuditEvent) -> bool:
    """True for an event that says nothing of what the engine did with the transfer: submitted,
    outcome unknown, or refused by the open circuit before the engine saw it (recovery leaves
    that one alone, as the caller was told; a retry with the same id or key submits it)."""
    return event.kind in _NO_OUTCOME or event.detail.get("submitted") is False


def _own_outcome(events: Sequence[AuditEvent]) -> AuditEvent | None:
    """The event that recorded the outcome of creating the transfer itself."""
    for event in events:
        if _says_nothing(event) or event.kind is EventKind.EXPIRED:
            continue
        if "by" in event.detail:
            continue  # a hold's resolution, recorded on the hold
        return event
    return None


async def _until(
    future: asyncio.Future[_T], deadline: float, intents: Sequence[TransferIntent]
) -> _T:
    """Wait for `future` until the loop time `deadline`, never cancelling it; past the deadline,
    `OutcomeUnknownError` naming the intents' transfers.

    A private waiter woken by the future or a timer: what `asyncio.wait` does, at half its cost
    (it runs once per call on the hot path). A cancelled caller cancels only the waiter.
    """
    if not future.done():
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        wake = functools.partial(_wake, waiter)
        future.add_done_callback(wake)
        timer = loop.call_at(deadline, wake)
        try:
            await waiter
        finally:
            timer.cancel()
            future.remove_done_callback(wake)
    if not future.done():
        raise OutcomeUnknownError(
            "the deadline passed before the transfer's outcome was known; it may still be "
            "applied: retry with the same id or idempotency key",
            transfer_ids=[i.id for i in intents],
        )
    return future.result()


def _retire(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    """A done callback that forgets a finished task and observes its exception (a caller that
    stopped waiting for it never reads it)."""

    def retire(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return retire


def _wake(waiter: asyncio.Future[None], *_: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
        future.exception()  # observed here: whoever waits on it re-raises it


def _hand_out(group: Sequence[_WriteCall], results: list[TransferResult]) -> None:
    """Give each call of a group its results, in its order (the group's order is the calls')."""
    if len(group) == 1:
        if not group[0].future.done():
            group[0].future.set_result(results)
        return
    start = 0
    for call in group:
        end = start + len(call.intents)
        if not call.future.done():
            call.future.set_result(results[start:end])
        start = end


async def _settle(future: asyncio.Future[_T], work: Awaitable[_T]) -> None:
    """Run `work` and hand its result or exception to `future`."""
    try:
        result = await work
    except Exception as exc:
        _fail(future, exc)
    else:
        if not future.done():
            future.set_result(result)


def _expiry_detail(intent: TransferIntent, now_ns: int) -> dict[str, str]:
    """An expiry creates no transfer; a hold's `expiry_code` control fact names it in the
    audit."""
    detail = {"engine_now": str(now_ns)}
    label = intent.control.get("expiry_code")
    if isinstance(label, str):
        detail["transfer_code"] = label
    return detail


_REQUIRED_FIELDS = frozenset({"debit_account_id", "credit_account_id", "amount", "ledger", "code"})


def _request_of(request: TransferRequest | None, fields: TransferFields) -> TransferRequest:
    """The request given, or the one its fields make; not both."""
    if request is None:
        missing = _REQUIRED_FIELDS - fields.keys()
        if missing:
            raise ValidationError(f"missing transfer fields: {', '.join(sorted(missing))}")
        return TransferRequest(**fields)
    if fields:
        raise ValidationError("pass a TransferRequest or its fields by keyword, not both")
    return request
