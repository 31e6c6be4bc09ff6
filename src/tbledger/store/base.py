"""The `Store`: account mapping, transfer intents and the append-only audit log, over one URL.

Every method is one statement or one short transaction, and a batch is written with one COPY or
INSERT per table (see the backends), because the store sits on the write path of every transfer
(DESIGN §3: persist the intent, submit to the engine, persist the outcome). Writes validate their
input first (`tbledger.store.rows`, a column at a time), so bad input fails as a
`ValidationError` before any I/O. The batch writes return the audit events they appended, with
their seqs; a caller that does not read them passes ``returning=False``, which spares reading
the seqs back and building thousands of `AuditEvent` objects (and the garbage collector's work
on them).
Database faults come out as the store's exceptions with the driver's exception as ``__cause__``:
`StoreUnavailableError` when the database cannot be reached (so the service can stop before it
touches the engine), `DuplicateRecordError` for a taken id, name or idempotency key,
`StoreError` otherwise.

The audit log is never updated: a transfer's current status is its latest event, and the
recovery backlog is the set of transfers whose only events say nothing about the engine's outcome
(``submitted``, ``outcome_unknown``). Reads that could return an unbounded number of rows take a
limit or fail with `LimitExceededError` rather than truncate.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload

import sqlalchemy as sa
import tigerbeetle
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tbledger.errors import (
    DuplicateRecordError,
    InvalidIdError,
    InvariantViolationError,
    LimitExceededError,
    RecordNotFoundError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from tbledger.ids import format_id, parse_id
from tbledger.limits import (
    CDC_BATCH_EVENTS_MAX,
    STORE_AUDIT_ROWS_MAX,
    STORE_BATCH_ROWS_MAX,
    STORE_PAGE_ROWS_MAX,
    STORE_RESOLUTION_ROWS_MAX,
    WEBHOOK_ENDPOINTS_PER_OWNER_MAX,
)
from tbledger.model import (
    NO_OUTCOME_KINDS,
    RESOLVED_KINDS,
    AccountRecord,
    AccountStatus,
    ApiKeyRecord,
    AuditEvent,
    BalanceRecord,
    ChangeRecord,
    EventKind,
    ExchangeQuote,
    ExchangeRate,
    MerchantFee,
    NewAuditEvent,
    TransferIntent,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSubscription,
)
from tbledger.store._filters import checked_pairs, metadata_holds, touching_owner
from tbledger.store.backend import Backend, StoreOptions, sent_nothing, translate_error
from tbledger.store.connect import open_backend
from tbledger.store.migrate import check_at_head, upgrade, upgrade_engine
from tbledger.store.records import validate_status_change
from tbledger.store.rows import (
    ACCOUNT_COLUMNS,
    INTENT_COLUMNS,
    account_columns,
    event_columns,
    intent_columns,
    submitted_columns,
)
from tbledger.store.tables import (
    account_balances,
    accounts,
    api_keys,
    audit_events,
    change_events,
    exchange_quotes,
    exchange_rates,
    merchant_fees,
    transfers,
    webhook_deliveries,
    webhook_endpoints,
    webhook_leases,
)

__all__ = ["Store"]

_T = TypeVar("_T")
_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])

# audit_events.seq is a BIGINT: the largest cursor the database can compare against.
_SEQ_MAX = (1 << 63) - 1


def _reconnecting(method: _Method) -> _Method:
    """Run a store call again, on another connection, when it failed before reaching the database.

    A restart or failover of PostgreSQL closes every pooled connection, and a connection the
    server closed can still be handed out in the moments before the event loop has read the end
    of its stream; the driver then refuses the call's statement without sending it
    (`sent_nothing`). Each call is one statement or one transaction, so nothing of it happened,
    and the call is made again; the refusing connection was invalidated, and the pool replaces it.
    Each refusal uses up one connection that predates the fault, so the pool's size plus one
    attempts are sure to reach a new one. Anything else, a statement lost in flight included,
    is raised: it may have been applied. Iterators among the arguments are read into lists
    first, so that the retry sees the same rows.
    """

    @functools.wraps(method)
    async def call(self: Store, *args: Any, **kwargs: Any) -> Any:
        args = tuple(list(arg) if isinstance(arg, Iterator) else arg for arg in args)
        kwargs = {k: list(v) if isinstance(v, Iterator) else v for k, v in kwargs.items()}
        attempts_left = self._attempts_max
        while True:
            try:
                return await method(self, *args, **kwargs)
            except StoreError as exc:
                attempts_left -= 1
                if attempts_left <= 0 or not sent_nothing(exc):
                    raise

    # The same signature: the arguments go through unchanged (iterators as lists).
    return cast(_Method, call)


class Store:
    """Account mapping, transfer intents and the audit log in PostgreSQL or SQLite."""

    def __init__(self, engine: AsyncEngine, backend: Backend) -> None:
        """Wrap an engine built by `backend`. `Store.connect` does this for a URL (and checks that
        the database answers); call it directly only with a backend built by hand, such as a
        `PostgresBackend` given its own `DriverCalls`."""
        self._engine = engine
        self._backend = backend
        # SQLite in memory is one connection: calls must not interleave their transactions on it.
        self._turns: asyncio.Lock | None = asyncio.Lock() if backend.single_connection else None
        # One attempt per pooled connection that may predate a server restart, and one more.
        pool = engine.sync_engine.pool
        self._attempts_max = 1 + (pool.size() if isinstance(pool, sa.pool.QueuePool) else 0)
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        migrate: bool = False,
        require_head: bool = False,
        app_role: str | None = None,
        options: StoreOptions | None = None,
    ) -> Store:
        """Open the store at `url` and check that it answers (`StoreUnavailableError` if not).

        `url` is ``postgresql://...`` or ``postgresql+asyncpg://...`` (asyncpg), ``sqlite:///path``
        or ``sqlite://`` (in memory, migrated on open since nothing else can reach it).
        `migrate` first upgrades the schema to the latest migration; `app_role` names the
        PostgreSQL role the migration grants to (default: ``options.role``, else
        ``tbledger_app``). `require_head`, for callers that must not migrate (the application
        role may not), fails with `StoreError` unless the schema is at the latest migration.
        `options` sets the PostgreSQL schema and role, pool size and timeouts.
        """
        backend = open_backend(url, options)
        if migrate and not backend.single_connection:
            # Migrations run as the login user (the tables' owner), never as options.role; the
            # role the store acts as is the one granted to, unless told otherwise.
            schema = options.schema if options is not None else None
            if app_role is None and options is not None:
                app_role = options.role
            await upgrade(url, schema=schema, app_role=app_role)
        engine = backend.create_engine()
        store = cls(engine, backend)
        try:
            if backend.single_connection:
                await upgrade_engine(engine, app_role=app_role)
            await store.ping()
            if require_head:
                await check_at_head(engine)
        except BaseException:
            await engine.dispose()
            raise
        return store

    @property
    def backend_name(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self._backend.name

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine, for migrations and for tests that inspect the database."""
        return self._engine

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; the store cannot be used afterwards. Idempotent."""
        self._closed = True
        await self._engine.dispose()

    @_reconnecting
    async def ping(self) -> None:
        """Check the database answers; raise `StoreUnavailableError` if it does not."""
        try:
            async with self._connection() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except StoreUnavailableError:
            raise
        except StoreError as exc:
            raise StoreUnavailableError(f"store ping failed: {exc}") from exc

    # Accounts.

    @_reconnecting
    async def create_accounts(self, rows: Iterable[AccountRecord]) -> list[AccountRecord]:
        """Insert account mappings and their ``account_created`` events (a statement each)."""
        records = _batch(rows)
        if not records:
            return []
        now = _now()
        values = account_columns(records, now)
        stored = [
            replace(
                record,
                status=AccountStatus(record.status),
                metadata=dict(record.metadata),
                control=dict(record.control),
                created_at=now,
                updated_at=now,
            )
            for record in records
        ]
        events = event_columns(
            [
                NewAuditEvent(
                    kind=EventKind.ACCOUNT_CREATED,
                    account_id=record.id,
                    status=record.status.value,
                )
                for record in stored
            ],
            now,
        )
        if len(records) <= self._backend.direct_rows_max:
            async with self._connection() as conn:
                await self._backend.insert_direct(conn, (accounts, ACCOUNT_COLUMNS, values), events)
            return stored
        async with self._transaction() as conn:
            await self._backend.insert_rows(conn, accounts, ACCOUNT_COLUMNS, values)
            await self._backend.insert_events(conn, events, returning=False)
        return stored

    @_reconnecting
    async def get_account(self, account_id: int) -> AccountRecord | None:
        """The account mapped to `account_id`, or None."""
        account_id = _id("account_id", account_id)
        query = sa.select(accounts).where(accounts.c.id == account_id)
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _account_from_row(row)

    @_reconnecting
    async def get_accounts(self, account_ids: Iterable[int]) -> dict[int, AccountRecord]:
        """The accounts mapped to these ids (one query), by id; unknown ids are left out."""
        ids = sorted({_id("account_id", a) for a in account_ids})
        if len(ids) > STORE_BATCH_ROWS_MAX:
            raise LimitExceededError(f"at most {STORE_BATCH_ROWS_MAX} accounts per lookup")
        if not ids:
            return {}
        query = sa.select(accounts).where(accounts.c.id.in_(ids))
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return {r.id: r for r in (_account_from_row(row) for row in rows)}

    @_reconnecting
    async def get_accounts_by_owner(
        self, owner_id: str, *, limit: int = STORE_PAGE_ROWS_MAX
    ) -> list[AccountRecord]:
        """The owner's accounts in id order; more than `limit` is a `LimitExceededError`."""
        return await self._accounts_where(accounts.c.owner_id == owner_id, limit, "of an owner")

    @_reconnecting
    async def get_account_by_name(self, name: str) -> AccountRecord | None:
        """The account with this unique name (system accounts), or None."""
        query = sa.select(accounts).where(accounts.c.name == name)
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _account_from_row(row)

    @_reconnecting
    async def get_accounts_by_flow_ref(
        self, flow_ref: str, *, limit: int = STORE_PAGE_ROWS_MAX
    ) -> list[AccountRecord]:
        """The flow accounts serving this payment or contract id, in id order.

        Payment and contract ids are scoped to their owner, so several owners' accounts may
        serve the same id; more than `limit` is a `LimitExceededError`."""
        return await self._accounts_where(accounts.c.flow_ref == flow_ref, limit, "of a flow id")

    async def _accounts_where(
        self, condition: sa.ColumnElement[bool], limit: int, what: str
    ) -> list[AccountRecord]:
        """The accounts meeting `condition` in id order; more than `limit` is refused."""
        _check_limit(limit)
        query = sa.select(accounts).where(condition).order_by(accounts.c.id).limit(limit + 1)
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_account_from_row(row) for row in _bounded(rows, limit, f"accounts {what}")]

    @_reconnecting
    async def update_account_status(
        self,
        account_id: int,
        status: AccountStatus,
        freeze_transfer_id: int | None = None,
    ) -> AccountRecord:
        """Record a new status and its closing transfer; log ``account_status_changed``.

        Frozen and closed accounts name the pending closing transfer that holds them
        (`freeze_transfer_id`); an active account names none. `RecordNotFoundError` when the
        account is not in the store.
        """
        account_id = _id("account_id", account_id)
        validate_status_change(status, freeze_transfer_id)
        status = AccountStatus(status)
        now = _now()
        statement = (
            sa.update(accounts)
            .where(accounts.c.id == account_id)
            .values(status=status.value, freeze_transfer_id=freeze_transfer_id, updated_at=now)
            .returning(*accounts.c)
        )
        detail = {
            "freeze_transfer_id": None
            if freeze_transfer_id is None
            else format_id(freeze_transfer_id)
        }
        event = NewAuditEvent(
            kind=EventKind.ACCOUNT_STATUS_CHANGED,
            account_id=account_id,
            status=status.value,
            detail=detail,
        )
        async with self._transaction() as conn:
            row = (await conn.execute(statement)).first()
            if row is None:
                raise RecordNotFoundError(f"no account {format_id(account_id)} in the store")
            await self._backend.insert_events(conn, event_columns([event], now), returning=False)
        return _account_from_row(row)

    # Transfer intents.

    @overload
    async def insert_intents(
        self, intents: Iterable[TransferIntent], *, returning: Literal[True] = ...
    ) -> list[AuditEvent]: ...

    @overload
    async def insert_intents(
        self, intents: Iterable[TransferIntent], *, returning: Literal[False]
    ) -> None: ...

    @overload
    async def insert_intents(
        self, intents: Iterable[TransferIntent], *, returning: bool
    ) -> list[AuditEvent] | None: ...

    @_reconnecting
    async def insert_intents(
        self, intents: Iterable[TransferIntent], *, returning: bool = True
    ) -> list[AuditEvent] | None:
        """Persist intents and their ``submitted`` events (a statement each), in one transaction.

        Returns the ``submitted`` events in input order, or None with ``returning=False`` (the
        hot path: the events are written all the same, only not read back). A taken id or
        idempotency key fails the whole batch with `DuplicateRecordError`; nothing of it is
        stored.
        """
        records = _batch(intents)
        if not records:
            return [] if returning else None
        now = _now()
        values = intent_columns(records, now)
        ids = values[INTENT_COLUMNS.index("id")]
        events = submitted_columns(ids, now)
        if not returning and len(records) <= self._backend.direct_rows_max:
            async with self._connection() as conn:
                await self._backend.insert_direct(conn, (transfers, INTENT_COLUMNS, values), events)
            return None
        async with self._transaction() as conn:
            await self._backend.insert_rows(conn, transfers, INTENT_COLUMNS, values)
            seqs = await self._backend.insert_events(conn, events, returning=returning)
        if not returning:
            return None
        return [
            AuditEvent(
                seq=seq,
                kind=EventKind.SUBMITTED,
                transfer_id=transfer_id,
                account_id=None,
                status=None,
                engine_timestamp=None,
                detail={},
                recorded_at=now,
            )
            for seq, transfer_id in zip(seqs, ids, strict=True)
        ]

    @_reconnecting
    async def get_intent(self, transfer_id: int) -> TransferIntent | None:
        """The intent with this transfer id, or None."""
        transfer_id = _id("transfer_id", transfer_id)
        query = sa.select(transfers).where(transfers.c.id == transfer_id)
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _intent_from_row(row)

    @_reconnecting
    async def get_intents(self, transfer_ids: Iterable[int]) -> dict[int, TransferIntent]:
        """The intents with these transfer ids (one query), by id; unknown ids are left out."""
        ids = sorted({_id("transfer_id", t) for t in transfer_ids})
        if len(ids) > STORE_BATCH_ROWS_MAX:
            raise LimitExceededError(f"at most {STORE_BATCH_ROWS_MAX} transfers per lookup")
        if not ids:
            return {}
        query = sa.select(transfers).where(transfers.c.id.in_(ids))
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return {i.id: i for i in (_intent_from_row(row) for row in rows)}

    @_reconnecting
    async def intents_in_chain(self, chain_id: int) -> list[TransferIntent]:
        """Every member of the linked chain `chain_id`, in chain order."""
        chain_id = _id("chain_id", chain_id)
        query = (
            sa.select(transfers)
            .where(transfers.c.chain_id == chain_id)
            .order_by(transfers.c.chain_index)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_intent_from_row(row) for row in rows]

    @_reconnecting
    async def open_holds(
        self, limit: int, *, after_id: int | None = None
    ) -> list[tuple[TransferIntent, int | None]]:
        """Pending transfers with a timeout whose latest event is still ``pending``.

        Each comes with the engine timestamp of that event (the hold's creation in the engine),
        from which its expiry is computed. In id order; page with `after_id`.
        """
        _check_limit(limit)
        query = _still_pending().where(transfers.c.timeout > 0)
        if after_id is not None:
            query = query.where(transfers.c.id > _id("after_id", after_id))
        return await self._holds(query.order_by(transfers.c.id).limit(limit))

    @_reconnecting
    async def pending_holds_of(
        self, account_id: int, *, limit: int = STORE_PAGE_ROWS_MAX
    ) -> list[tuple[TransferIntent, int | None]]:
        """Holds on `account_id` (either side) whose latest event is still ``pending``, in id
        order, each with the engine timestamp of that event; at most `limit`."""
        _check_limit(limit)
        account_id = _id("account_id", account_id)
        pending = transfers.c.flags.op("&")(int(tigerbeetle.TransferFlags.PENDING)) != 0
        query = (
            _still_pending()
            .where(pending)
            .where(
                sa.or_(
                    transfers.c.debit_account_id == account_id,
                    transfers.c.credit_account_id == account_id,
                )
            )
            .order_by(transfers.c.id)
            .limit(limit)
        )
        return await self._holds(query)

    @_reconnecting
    async def resolutions_of(
        self, pending_ids: Iterable[int], *, limit: int = STORE_RESOLUTION_ROWS_MAX
    ) -> dict[int, list[int]]:
        """The ids of every post and void persisted for these holds, by hold, in id order;
        holds with none are absent. Refused attempts are listed too: the store cannot tell
        whether one the engine never answered was applied. More than `limit` in all is a
        `LimitExceededError`."""
        ids = list(dict.fromkeys(_id("pending_id", p) for p in _batch(pending_ids)))
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"limit must be a positive int, got {limit!r}")
        if not ids:
            return {}
        resolving = int(
            tigerbeetle.TransferFlags.POST_PENDING_TRANSFER
            | tigerbeetle.TransferFlags.VOID_PENDING_TRANSFER
        )
        query = (
            sa.select(transfers.c.pending_id, transfers.c.id)
            # The same term as the partial index's predicate, so both databases use the index.
            .where(transfers.c.flags.op("&")(resolving) != 0)
            .where(transfers.c.pending_id.in_(ids))
            .order_by(transfers.c.id)
            .limit(limit + 1)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        found: dict[int, list[int]] = {}
        for pending_id, transfer_id in _bounded(rows, limit, "posts and voids of these holds"):
            found.setdefault(pending_id, []).append(transfer_id)
        return found

    async def _holds(self, query: sa.Select[Any]) -> list[tuple[TransferIntent, int | None]]:
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [(_intent_from_row(row), row._mapping["pending_timestamp"]) for row in rows]

    @_reconnecting
    async def find_by_idempotency_key(self, key: str) -> TransferIntent | None:
        """The intent stored under this idempotency key, or None."""
        query = sa.select(transfers).where(transfers.c.idempotency_key == key)
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _intent_from_row(row)

    @_reconnecting
    async def find_by_idempotency_keys(self, keys: Iterable[str]) -> dict[str, TransferIntent]:
        """The intents stored under these idempotency keys (one query), by key; unknown keys are
        left out. A replayed batch is told apart from a new one with this single lookup."""
        wanted = list(dict.fromkeys(_batch(keys)))
        if not wanted:
            return {}
        query = sa.select(transfers).where(transfers.c.idempotency_key.in_(wanted))
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        found = (_intent_from_row(row) for row in rows)
        return {i.idempotency_key: i for i in found if i.idempotency_key is not None}

    @_reconnecting
    async def transfers_by_event_id(
        self, event_id: str, *, limit: int = STORE_PAGE_ROWS_MAX
    ) -> list[TransferIntent]:
        """The intents tagged with this event id, in id (time) order."""
        _check_limit(limit)
        query = (
            sa.select(transfers)
            .where(transfers.c.event_id == event_id)
            .order_by(transfers.c.id)
            .limit(limit + 1)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_intent_from_row(row) for row in _bounded(rows, limit, "transfers of an event")]

    async def transfers_by_event_id_page(
        self,
        event_id: str,
        limit: int,
        *,
        owner_id: str | None = None,
        after_id: int | None = None,
    ) -> list[TransferIntent]:
        """A page of the intents tagged with this event id, in id (time) order, at most `limit`;
        page with `after_id` (the last id of the previous page).

        With `owner_id`, only transfers whose debit or credit account belongs to that owner: the
        filter is in the query, so other owners' transfers under the same event id cost a page
        nothing and cannot push the owner's own past a bound.
        """
        _check_limit(limit)
        query = sa.select(transfers).where(transfers.c.event_id == event_id)
        if owner_id is not None:
            query = query.where(touching_owner(owner_id))
        if after_id is not None:
            query = query.where(transfers.c.id > _id("after_id", after_id))
        query = query.order_by(transfers.c.id).limit(limit)
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_intent_from_row(row) for row in rows]

    # Discovery: accounts by their columns, transfers by their metadata, a page at a time.

    @_reconnecting
    async def accounts_page(
        self,
        limit: int,
        *,
        account_type: str | None = None,
        ledger: int | None = None,
        status: AccountStatus | str | None = None,
        owner_id: str | None = None,
        after_id: int | None = None,
    ) -> list[AccountRecord]:
        """A page of the accounts meeting every filter given, in id order, at most `limit`;
        page with `after_id` (the last id of the previous page). No filter: every account, the
        platform's own (no owner) among them."""
        _check_limit(limit)
        query = sa.select(accounts)
        if account_type is not None:
            query = query.where(accounts.c.account_type == account_type)
        if ledger is not None:
            query = query.where(accounts.c.ledger == ledger)
        if status is not None:
            try:
                status = AccountStatus(status)
            except ValueError:
                raise ValidationError(f"unknown account status {status!r}") from None
            query = query.where(accounts.c.status == status.value)
        if owner_id is not None:
            query = query.where(accounts.c.owner_id == owner_id)
        if after_id is not None:
            query = query.where(accounts.c.id > _id("after_id", after_id))
        query = query.order_by(accounts.c.id).limit(limit)
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_account_from_row(row) for row in rows]

    @_reconnecting
    async def transfers_by_metadata_page(
        self,
        metadata: Mapping[str, str],
        limit: int,
        *,
        event_id: str | None = None,
        owner_id: str | None = None,
        after_id: int | None = None,
    ) -> list[TransferIntent]:
        """A page of the intents whose metadata holds every key/value pair of `metadata`
        (string values, exactly), in id (time) order, at most `limit`; page with `after_id`.

        `event_id` narrows to one event's transfers; `owner_id` to those whose debit or credit
        account belongs to that owner, in the query, as for `transfers_by_event_id_page`. On
        PostgreSQL the GIN index on ``metadata`` finds the candidates.
        """
        _check_limit(limit)
        pairs = checked_pairs(metadata)
        query = sa.select(transfers).where(metadata_holds(self._backend.name, pairs))
        if event_id is not None:
            query = query.where(transfers.c.event_id == event_id)
        if owner_id is not None:
            query = query.where(touching_owner(owner_id))
        if after_id is not None:
            query = query.where(transfers.c.id > _id("after_id", after_id))
        query = query.order_by(transfers.c.id).limit(limit)
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_intent_from_row(row) for row in rows]

    # The audit log.

    @overload
    async def append_events(
        self, events: Iterable[NewAuditEvent], *, returning: Literal[True] = ...
    ) -> list[AuditEvent]: ...

    @overload
    async def append_events(
        self, events: Iterable[NewAuditEvent], *, returning: Literal[False]
    ) -> None: ...

    @overload
    async def append_events(
        self, events: Iterable[NewAuditEvent], *, returning: bool
    ) -> list[AuditEvent] | None: ...

    @_reconnecting
    async def append_events(
        self, events: Iterable[NewAuditEvent], *, returning: bool = True
    ) -> list[AuditEvent] | None:
        """Append events (one batch statement); return them with their seqs, in input order.

        With ``returning=False`` return None: the events are appended all the same, only their
        seqs are not read back.
        """
        records = _batch(events)
        if not records:
            return [] if returning else None
        now = _now()
        values = event_columns(records, now)
        if not returning and len(records) <= self._backend.direct_rows_max:
            async with self._connection() as conn:
                await self._backend.insert_direct(conn, None, values)
            return None
        async with self._transaction() as conn:
            seqs = await self._backend.insert_events(conn, values, returning=returning)
        if not returning:
            return None
        return [
            _appended(seq, row, record)
            for seq, row, record in zip(seqs, zip(*values, strict=True), records, strict=True)
        ]

    @_reconnecting
    async def append_hold_resolutions(self, events: Iterable[NewAuditEvent]) -> list[AuditEvent]:
        """Append each hold's resolution (``posted``, ``voided`` or ``expired``) unless the hold
        already has one; return the events appended, with their seqs, in input order.

        A hold is resolved once, and several recorders may find the same resolution at the same
        time (a recovery pass, a read of the hold, a refused post, another process): the check
        and the append are one transaction under the audit log's append lock, so exactly one of
        them appends it. Only the first event of a hold in `events` counts.
        """
        records = _batch(events)
        for record in records:
            if record.kind not in RESOLVED_KINDS or record.transfer_id is None:
                raise ValidationError(
                    f"a hold's resolution names its hold and is one of "
                    f"{sorted(k.value for k in RESOLVED_KINDS)}, not {str(record.kind)!r}"
                )
        if not records:
            return []
        ids = list(dict.fromkeys(_id("transfer_id", r.transfer_id) for r in records))
        taken_query = (
            sa.select(audit_events.c.transfer_id)
            .where(audit_events.c.transfer_id.in_(ids))
            .where(audit_events.c.kind.in_([kind.value for kind in RESOLVED_KINDS]))
        )
        async with self._transaction() as conn:
            await self._backend.lock_audit(conn)
            taken = set((await conn.execute(taken_query)).scalars())
            fresh: list[NewAuditEvent] = []
            for record in records:
                if record.transfer_id not in taken:
                    taken.add(record.transfer_id)
                    fresh.append(record)
            if not fresh:
                return []
            values = event_columns(fresh, _now())
            seqs = await self._backend.insert_events(conn, values, returning=True)
        return [
            _appended(seq, row, record)
            for seq, row, record in zip(seqs, zip(*values, strict=True), fresh, strict=True)
        ]

    @_reconnecting
    async def transfer_audit(
        self, transfer_id: int, *, limit: int = STORE_PAGE_ROWS_MAX
    ) -> list[AuditEvent]:
        """A transfer's events in seq (append) order."""
        transfer_id = _id("transfer_id", transfer_id)
        _check_limit(limit)
        query = (
            sa.select(audit_events)
            .where(audit_events.c.transfer_id == transfer_id)
            .order_by(audit_events.c.seq)
            .limit(limit + 1)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_event_from_row(row) for row in _bounded(rows, limit, "events of a transfer")]

    @_reconnecting
    async def transfer_audits(
        self, transfer_ids: Iterable[int], *, limit: int = STORE_AUDIT_ROWS_MAX
    ) -> dict[int, list[AuditEvent]]:
        """The events of many transfers (one query), each transfer's in seq order; transfers
        with none are absent. More than `limit` events in all is a `LimitExceededError`."""
        ids = list(dict.fromkeys(_id("transfer_id", i) for i in _batch(transfer_ids)))
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"limit must be a positive int, got {limit!r}")
        if limit > STORE_AUDIT_ROWS_MAX:
            raise LimitExceededError(
                f"limit {limit} exceeds STORE_AUDIT_ROWS_MAX={STORE_AUDIT_ROWS_MAX}"
            )
        if not ids:
            return {}
        query = (
            sa.select(audit_events)
            .where(audit_events.c.transfer_id.in_(ids))
            .order_by(audit_events.c.transfer_id, audit_events.c.seq)
            .limit(limit + 1)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        result: dict[int, list[AuditEvent]] = {}
        for row in _bounded(rows, limit, "events of these transfers"):
            event = _event_from_row(row)
            if event.transfer_id is None:
                raise InvariantViolationError(f"event {event.seq} names no transfer")
            result.setdefault(event.transfer_id, []).append(event)
        return result

    @_reconnecting
    async def current_status(self, transfer_ids: Iterable[int]) -> dict[int, AuditEvent]:
        """Each transfer's latest event (its current status); transfers with none are absent."""
        ids = list(dict.fromkeys(_id("transfer_id", i) for i in _batch(transfer_ids)))
        if not ids:
            return {}
        latest = (
            sa.select(sa.func.max(audit_events.c.seq).label("seq"))
            .where(audit_events.c.transfer_id.in_(ids))
            .group_by(audit_events.c.transfer_id)
            .subquery()
        )
        query = sa.select(audit_events).join(latest, audit_events.c.seq == latest.c.seq)
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        result = {}
        for row in rows:
            event = _event_from_row(row)
            if event.transfer_id is None:
                raise InvariantViolationError(f"latest event {event.seq} names no transfer")
            result[event.transfer_id] = event
        return result

    @_reconnecting
    async def intents_without_outcome(
        self,
        limit: int,
        *,
        after_id: int | None = None,
        created_before: datetime | None = None,
    ) -> list[TransferIntent]:
        """The recovery backlog: intents whose only events are ``submitted``/``outcome_unknown``.

        In id (time) order, at most `limit`; page with `after_id` (the last id of the previous
        page). `created_before` leaves out intents still in flight (submitted moments ago).
        """
        _check_limit(limit)
        outcome = audit_events.alias("outcome")
        has_outcome = (
            sa.select(outcome.c.seq)
            .where(outcome.c.transfer_id == transfers.c.id)
            .where(outcome.c.kind.not_in([kind.value for kind in NO_OUTCOME_KINDS]))
            .exists()
        )
        query = sa.select(transfers).where(~has_outcome)
        if after_id is not None:
            query = query.where(transfers.c.id > _id("after_id", after_id))
        if created_before is not None:
            if created_before.tzinfo is None:
                raise ValidationError("created_before must be timezone-aware")
            query = query.where(transfers.c.created_at < created_before)
        query = query.order_by(transfers.c.id).limit(limit)
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_intent_from_row(row) for row in rows]

    @_reconnecting
    async def events_since(self, cursor: int, limit: int) -> list[AuditEvent]:
        """The durable tail: events with seq > `cursor`, in seq order, at most `limit`.

        Start with cursor 0; continue from the last returned event's seq. Seq order is commit
        order, so an event never appears behind a cursor that has already passed its seq.
        """
        if isinstance(cursor, bool) or not isinstance(cursor, int) or not 0 <= cursor <= _SEQ_MAX:
            raise ValidationError(f"cursor must be an int in [0, 2^63-1], got {cursor!r}")
        _check_limit(limit)
        query = (
            sa.select(audit_events)
            .where(audit_events.c.seq > cursor)
            .order_by(audit_events.c.seq)
            .limit(limit)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_event_from_row(row) for row in rows]

    # API keys.

    @_reconnecting
    async def create_api_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        """Store a new key; `DuplicateRecordError` if its id is taken."""
        values = {
            "id": record.id,
            "secret_hash": record.secret_hash,
            "name": record.name,
            "scopes": " ".join(record.scopes),
            "owner_id": record.owner_id,
            "rate_per_s": record.rate_per_s,
            "burst": record.burst,
            "created_at": _now(),
        }
        async with self._transaction() as conn:
            row = (
                await conn.execute(api_keys.insert().values(values).returning(*api_keys.c))
            ).one()
        return _key_from_row(row)

    @_reconnecting
    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this public id (revoked or not), or None."""
        query = sa.select(api_keys).where(api_keys.c.id == key_id)
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _key_from_row(row)

    @_reconnecting
    async def list_api_keys(self, *, limit: int = STORE_PAGE_ROWS_MAX) -> list[ApiKeyRecord]:
        """Every key, oldest first; more than `limit` is a `LimitExceededError`."""
        _check_limit(limit)
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id).limit(limit + 1)
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [_key_from_row(row) for row in _bounded(rows, limit, "API keys")]

    @_reconnecting
    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key (idempotent: a revoked key keeps its first revocation time)."""
        statement = (
            sa.update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(revoked_at=sa.func.coalesce(api_keys.c.revoked_at, _now()))
            .returning(*api_keys.c)
        )
        async with self._transaction() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            raise RecordNotFoundError(f"no API key {key_id!r}")
        return _key_from_row(row)

    # Prices: operator rates, quotes, merchant fee schedules (the values are checked by
    # `tbledger.prices`, their only writer).

    async def add_exchange_rate(self, rate: ExchangeRate) -> ExchangeRate:
        """Append an operator rate; it supersedes the pair's older rows from its `valid_from`."""
        values = {
            "source_ledger": rate.source_ledger,
            "target_ledger": rate.target_ledger,
            "rate": rate.rate,
            "valid_from": rate.valid_from,
            "valid_until": rate.valid_until,
            "source": rate.source,
            "set_by": rate.set_by,
            "created_at": _now(),
        }
        statement = exchange_rates.insert().values(values).returning(*exchange_rates.c)
        async with self._transaction() as conn:
            row = (await conn.execute(statement)).one()
        return _rate_from_row(row)

    async def current_exchange_rate(
        self, source_ledger: int, target_ledger: int, at: datetime
    ) -> ExchangeRate | None:
        """The pair's newest rate whose validity started by `at`; None if there is none or it
        ended (an ended rate is not replaced by an older one: the operator stopped the pair)."""
        c = exchange_rates.c
        query = (
            sa.select(exchange_rates)
            .where(
                c.source_ledger == source_ledger,
                c.target_ledger == target_ledger,
                c.valid_from <= at,
            )
            .order_by(c.seq.desc())
            .limit(1)
        )
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        rate = None if row is None else _rate_from_row(row)
        return None if rate is None or _ended(rate, at) else rate

    async def current_exchange_rates(
        self, at: datetime, *, limit: int = STORE_PAGE_ROWS_MAX
    ) -> list[ExchangeRate]:
        """Every pair's current rate at `at` (as `current_exchange_rate`), by pair."""
        _check_limit(limit)
        c = exchange_rates.c
        newest = (
            sa.select(sa.func.max(c.seq).label("seq"))
            .where(c.valid_from <= at)
            .group_by(c.source_ledger, c.target_ledger)
            .subquery()
        )
        query = (
            sa.select(exchange_rates)
            .join(newest, newest.c.seq == c.seq)
            .order_by(c.source_ledger, c.target_ledger)
            .limit(limit + 1)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        found = [_rate_from_row(row) for row in _bounded(rows, limit, "rate pairs")]
        return [rate for rate in found if not _ended(rate, at)]

    async def insert_quote(self, quote: ExchangeQuote) -> ExchangeQuote:
        """Store an issued quote; `DuplicateRecordError` if its id (or `spent_by`) is taken."""
        values = {column.name: getattr(quote, column.name) for column in exchange_quotes.c}
        async with self._transaction() as conn:
            await conn.execute(exchange_quotes.insert().values(values))
        return quote

    async def get_quote(self, quote_id: int) -> ExchangeQuote | None:
        query = sa.select(exchange_quotes).where(exchange_quotes.c.id == _id("quote_id", quote_id))
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _quote_from_row(row)

    async def quote_spent_by(self, spent_by: str) -> ExchangeQuote | None:
        """The quote an exchange with this idempotency key spent, if any."""
        query = sa.select(exchange_quotes).where(exchange_quotes.c.spent_by == spent_by)
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _quote_from_row(row)

    async def spend_quote(self, quote_id: int, at: datetime, spent_by: str | None) -> bool:
        """Mark an unspent quote spent at `at`; False if it was already spent (one statement, so
        two exchanges racing for one quote cannot both spend it)."""
        c = exchange_quotes.c
        statement = (
            sa.update(exchange_quotes)
            .where(c.id == _id("quote_id", quote_id), c.spent_at.is_(None))
            .values(spent_at=at, spent_by=spent_by)
        )
        async with self._transaction() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount == 1)

    async def add_merchant_fee(self, fee: MerchantFee) -> MerchantFee:
        """Append a merchant's fee schedule; it replaces the older one from now on."""
        values = {
            "account_id": _id("account_id", fee.account_id),
            "fee_bps": fee.fee_bps,
            "fee_fixed_minor": fee.fee_fixed_minor,
            "fee_payer": fee.fee_payer,
            "set_by": fee.set_by,
            "created_at": _now(),
        }
        statement = merchant_fees.insert().values(values).returning(*merchant_fees.c)
        async with self._transaction() as conn:
            row = (await conn.execute(statement)).one()
        return _fee_from_row(row)

    async def merchant_fee(self, account_id: int) -> MerchantFee | None:
        """The merchant account's newest fee schedule, or None (the platform default applies)."""
        c = merchant_fees.c
        query = (
            sa.select(merchant_fees)
            .where(c.account_id == _id("account_id", account_id))
            .order_by(c.seq.desc())
            .limit(1)
        )
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _fee_from_row(row)

    # Webhooks (DESIGN §10): endpoints and their cursors, the delivery log, deliverer leases.

    async def create_webhook_endpoint(self, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        """Store a new endpoint; `LimitExceededError` past WEBHOOK_ENDPOINTS_PER_OWNER_MAX for its
        owner (admin-wide endpoints count as one owner), `DuplicateRecordError` if its id is
        taken."""
        c = webhook_endpoints.c
        owned = (
            c.owner_id.is_(None) if endpoint.owner_id is None else c.owner_id == endpoint.owner_id
        )
        values = _endpoint_values(endpoint)
        values["created_at"] = _now()
        async with self._transaction() as conn:
            count = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(webhook_endpoints).where(owned)
                )
            ).scalar_one()
            if count >= WEBHOOK_ENDPOINTS_PER_OWNER_MAX:
                raise LimitExceededError(
                    f"at most {WEBHOOK_ENDPOINTS_PER_OWNER_MAX} webhook endpoints per owner "
                    "(WEBHOOK_ENDPOINTS_PER_OWNER_MAX)"
                )
            row = (
                await conn.execute(
                    webhook_endpoints.insert().values(values).returning(*webhook_endpoints.c)
                )
            ).one()
        return _endpoint_from_row(row)

    @_reconnecting
    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        query = sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        async with self._connection() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _endpoint_from_row(row)

    @_reconnecting
    async def list_webhook_endpoints(
        self, *, owner_id: str | None = None, every_owner: bool = False
    ) -> list[WebhookEndpoint]:
        """Endpoints oldest first: every one (`every_owner`), or those of `owner_id` (None: the
        admin-wide ones)."""
        c = webhook_endpoints.c
        query = sa.select(webhook_endpoints).order_by(c.created_at, c.id)
        if not every_owner:
            query = query.where(
                c.owner_id.is_(None) if owner_id is None else c.owner_id == owner_id
            )
        async with self._connection() as conn:
            rows = (await conn.execute(query.limit(STORE_PAGE_ROWS_MAX + 1))).all()
        return [_endpoint_from_row(r) for r in _bounded(rows, STORE_PAGE_ROWS_MAX, "endpoints")]

    async def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        """Remove an endpoint and its lease (its delivery log stays); False if there was none."""
        async with self._transaction() as conn:
            await conn.execute(
                sa.delete(webhook_leases).where(webhook_leases.c.endpoint_id == endpoint_id)
            )
            result = await conn.execute(
                sa.delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            )
        return bool(result.rowcount == 1)

    async def update_webhook_endpoint(self, endpoint_id: str, **values: Any) -> WebhookEndpoint:
        """Set columns of an endpoint (the webhooks package is the only caller); a ``replay``
        (setting `cursor`) also bumps `generation`, so an attempt already under way cannot move
        the cursor past the replayed events."""
        c = webhook_endpoints.c
        unknown = set(values) - {col.name for col in webhook_endpoints.c} - {"generation"}
        if unknown or "generation" in values:
            raise ValidationError(f"cannot set {sorted(unknown | ({'generation'} & set(values)))}")
        if "cursor" in values:
            values["generation"] = c.generation + 1
        statement = (
            sa.update(webhook_endpoints)
            .where(c.id == endpoint_id)
            .values(values)
            .returning(*webhook_endpoints.c)
        )
        async with self._transaction() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            raise RecordNotFoundError(f"no webhook endpoint {endpoint_id!r}")
        return _endpoint_from_row(row)

    async def advance_webhook_cursor(
        self, endpoint_id: str, *, generation: int, seq: int, delivered: bool
    ) -> bool:
        """Move the cursor forward to `seq` (never back) unless a replay came in between; a
        delivery (`delivered`) also ends the run of failures. False if nothing moved."""
        return await self.record_webhook_deliveries(
            endpoint_id, [], generation=generation, seq=seq, delivered=delivered
        )

    async def record_webhook_deliveries(
        self,
        endpoint_id: str,
        deliveries: Sequence[WebhookDelivery],
        *,
        generation: int,
        seq: int,
        delivered: bool,
    ) -> bool:
        """Log `deliveries` and move the cursor forward to `seq`, in one transaction (one
        commit for a run of deliveries, not two per event). The cursor moves as
        `advance_webhook_cursor` moves it; the deliveries are logged either way. False if the
        cursor did not move."""
        c = webhook_endpoints.c
        values: dict[str, Any] = {"cursor": seq}
        if delivered:
            values["failure_count"] = 0
        statement = (
            sa.update(webhook_endpoints)
            .where(c.id == endpoint_id, c.generation == generation, c.cursor < seq)
            .values(values)
        )
        async with self._transaction() as conn:
            if deliveries:
                await conn.execute(
                    webhook_deliveries.insert(), [_delivery_values(d) for d in deliveries]
                )
            result = await conn.execute(statement)
        return bool(result.rowcount == 1)

    async def count_webhook_failure(
        self, endpoint_id: str, *, failures_max: int, reason: str
    ) -> WebhookEndpoint | None:
        """One more consecutive failure; the endpoint is disabled with `reason` at
        `failures_max`. None if the endpoint is gone."""
        c = webhook_endpoints.c
        failures = c.failure_count + 1
        disable = failures >= failures_max
        statement = (
            sa.update(webhook_endpoints)
            .where(c.id == endpoint_id)
            .values(
                failure_count=failures,
                enabled=sa.case((disable, sa.false()), else_=c.enabled),
                disabled_reason=sa.case((disable, reason), else_=c.disabled_reason),
            )
            .returning(*webhook_endpoints.c)
        )
        async with self._transaction() as conn:
            row = (await conn.execute(statement)).first()
        return None if row is None else _endpoint_from_row(row)

    async def append_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        async with self._transaction() as conn:
            await conn.execute(webhook_deliveries.insert().values(_delivery_values(delivery)))

    @_reconnecting
    async def webhook_deliveries(self, endpoint_id: str, *, limit: int) -> list[WebhookDelivery]:
        """An endpoint's latest delivery attempts, newest first."""
        _check_limit(limit)
        c = webhook_deliveries.c
        query = (
            sa.select(webhook_deliveries)
            .where(c.endpoint_id == endpoint_id)
            .order_by(c.seq.desc())
            .limit(limit)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return [WebhookDelivery(**dict(row._mapping)) for row in rows]

    async def acquire_webhook_lease(
        self, endpoint_id: str, *, holder: str, until: datetime, now: datetime
    ) -> bool:
        """Take or renew the endpoint's lease for `holder` until `until`; False while another
        holder's lease has not expired. One statement each way, so two processes cannot both
        win: the UPDATE matches only an expired or own lease, the INSERT only a missing one."""
        c = webhook_leases.c
        renew = (
            sa.update(webhook_leases)
            .where(c.endpoint_id == endpoint_id, sa.or_(c.holder == holder, c.expires_at < now))
            .values(holder=holder, expires_at=until)
        )
        async with self._transaction() as conn:
            if (await conn.execute(renew)).rowcount == 1:
                return True
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    webhook_leases.insert().values(
                        endpoint_id=endpoint_id, holder=holder, expires_at=until
                    )
                )
        except DuplicateRecordError:
            return False
        return True

    async def release_webhook_lease(self, endpoint_id: str, *, holder: str) -> None:
        c = webhook_leases.c
        async with self._transaction() as conn:
            await conn.execute(
                sa.delete(webhook_leases).where(c.endpoint_id == endpoint_id, c.holder == holder)
            )

    # -- the change stream (TigerBeetle's CDC) ---------------------------------------------------

    @_reconnecting
    async def record_changes(self, records: Sequence[ChangeRecord]) -> list[ChangeRecord]:
        """Record change events not recorded yet, with their balances and, for foreign
        transfers, their audit events; return those recorded now, in input order (an event
        given twice, once).

        One transaction: an event is recorded with its balances and its audit event or not at
        all, so a consumer that crashes before acknowledging the batch records nothing twice when
        the broker delivers it again. An event is known by its timestamp and type; one already
        recorded (a redelivery, a replay of the stream) is skipped, here or by a concurrent
        consumer (the check and the insert run under the audit log's append lock).
        """
        if len(records) > CDC_BATCH_EVENTS_MAX:
            raise LimitExceededError(
                f"{len(records)} change events exceed CDC_BATCH_EVENTS_MAX={CDC_BATCH_EVENTS_MAX}"
            )
        if not records:
            return []
        # An event twice in one batch (the broker redelivering it meanwhile) is one event.
        records = list({(r.timestamp, r.type): r for r in records}.values())
        c = change_events.c
        known = sa.select(c.timestamp, c.type).where(
            c.timestamp.in_(list({r.timestamp for r in records}))
        )
        async with self._transaction() as conn:
            # Under the audit log's append lock, the check and the insert are one step: a
            # concurrent consumer handed the same event waits, then finds it recorded.
            await self._backend.lock_audit(conn)
            recorded = {(int(t), str(k)) for t, k in (await conn.execute(known)).all()}
            fresh = [r for r in records if (r.timestamp, r.type) not in recorded]
            if not fresh:
                return []
            await conn.execute(
                change_events.insert(),
                [
                    {
                        "timestamp": r.timestamp,
                        "type": r.type,
                        "ledger": r.ledger,
                        "transfer_id": r.transfer_id,
                        "pending_id": r.pending_id,
                        "amount": r.amount,
                        "debit_account_id": r.debit_account_id,
                        "credit_account_id": r.credit_account_id,
                        "code": r.code,
                        "flags": r.flags,
                        "transfer_timestamp": r.transfer_timestamp,
                        "is_foreign": r.foreign,
                    }
                    for r in fresh
                ],
            )
            balances = [
                {
                    "account_id": b.account_id,
                    "timestamp": b.timestamp,
                    "type": b.type,
                    "debits_pending": b.debits_pending,
                    "debits_posted": b.debits_posted,
                    "credits_pending": b.credits_pending,
                    "credits_posted": b.credits_posted,
                    "flags": b.flags,
                }
                for r in fresh
                for b in r.balances
            ]
            await conn.execute(account_balances.insert(), balances)
            audits = [r.audit for r in fresh if r.audit is not None]
            if audits:
                await self._backend.insert_events(
                    conn, event_columns(audits, _now()), returning=False
                )
        return fresh

    @_reconnecting
    async def change_balances(
        self, account_id: int, timestamps: Iterable[int]
    ) -> dict[int, BalanceRecord]:
        """The account's balances recorded from the change stream at these event timestamps
        (those recorded; a timestamp not recorded yet is absent)."""
        account_id = _id("account_id", account_id)
        stamps = list(dict.fromkeys(_batch(timestamps)))
        if not stamps:
            return {}
        c = account_balances.c
        query = sa.select(account_balances).where(
            c.account_id == account_id, c.timestamp.in_(stamps)
        )
        async with self._connection() as conn:
            rows = (await conn.execute(query)).all()
        return {
            int(row.timestamp): BalanceRecord(
                account_id=int(row.account_id),
                timestamp=int(row.timestamp),
                type=row.type,
                debits_pending=int(row.debits_pending),
                debits_posted=int(row.debits_posted),
                credits_pending=int(row.credits_pending),
                credits_posted=int(row.credits_posted),
                flags=int(row.flags),
            )
            for row in rows
        }

    @_reconnecting
    async def latest_change_timestamp(self) -> int | None:
        """The timestamp of the latest change event recorded, None before the first."""
        query = sa.select(sa.func.max(change_events.c.timestamp))
        async with self._connection() as conn:
            value = (await conn.execute(query)).scalar()
        return None if value is None else int(value)

    @_reconnecting
    async def latest_event_seq(self) -> int:
        """The audit log's highest seq, 0 when it is empty."""
        query = sa.select(sa.func.coalesce(sa.func.max(audit_events.c.seq), 0))
        async with self._connection() as conn:
            return int((await conn.execute(query)).scalar_one())

    @_reconnecting
    async def webhook_events_after(
        self, endpoint: WebhookEndpoint, *, limit: int
    ) -> tuple[list[AuditEvent], int]:
        """The next events for `endpoint` after its cursor, and how far the log was read.

        One page of at most `limit` audit events after the cursor is read; of those, the events
        the endpoint's subscription and owner let it see are returned in seq order, with the
        page's last seq, so a deliverer can move the cursor past events it was not sent.
        An owner-scoped endpoint sees events of its owner's accounts and of transfers touching
        them (the owner filter of the transfer listings)."""
        _check_limit(limit)
        window = (
            sa.select(audit_events.c.seq)
            .where(audit_events.c.seq > endpoint.cursor)
            .order_by(audit_events.c.seq)
            .limit(limit)
            .subquery()
        )
        async with self._connection() as conn:
            end = (await conn.execute(sa.select(sa.func.max(window.c.seq)))).scalar_one()
            if end is None:
                return [], endpoint.cursor
            query = (
                sa.select(audit_events)
                .select_from(
                    audit_events.outerjoin(
                        transfers, transfers.c.id == audit_events.c.transfer_id
                    ).outerjoin(accounts, accounts.c.id == audit_events.c.account_id)
                )
                .where(audit_events.c.seq > endpoint.cursor, audit_events.c.seq <= end)
                .where(*_subscribed(endpoint))
                .order_by(audit_events.c.seq)
            )
            rows = (await conn.execute(query)).all()
        return [_event_from_row(row) for row in rows], int(end)

    # Connections.

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        async with (
            self._turn(),
            self._translated(),
            self._engine.connect() as conn,
            _dropped_when_unsent(conn),
        ):
            yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        async with (
            self._turn(),
            self._translated(),
            self._engine.begin() as conn,
            _dropped_when_unsent(conn),
        ):
            yield conn

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._closed:
            raise StoreError("the store is closed")
        if self._turns is None:
            yield
            return
        async with self._turns:
            yield

    @contextlib.asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except Exception as exc:
            translated = translate_error(exc)
            if translated is None:
                raise
            raise translated from exc


@contextlib.asynccontextmanager
async def _dropped_when_unsent(conn: AsyncConnection) -> AsyncIterator[None]:
    # A connection whose driver refused a statement unsent is out of step with its server (or
    # closed): SQLAlchemy does not know the driver's refusal for a disconnect, and would return
    # it to the pool, where its reset fails; invalidated, it is replaced before its next use.
    try:
        yield
    except Exception as exc:
        if sent_nothing(exc) and not conn.invalidated:
            await conn.invalidate(exc)
        raise


def _now() -> datetime:
    return datetime.now(UTC)


def _id(name: str, value: object) -> int:
    # The store takes ids as ints; strings are parsed at the edge (tbledger.ids.parse_id).
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidIdError(f"{name} must be an int id, not {type(value).__name__}")
    try:
        return parse_id(value)
    except InvalidIdError as exc:
        raise InvalidIdError(f"{name}: {exc}") from None


def _batch(rows: Iterable[_T]) -> list[_T]:
    batch = list(rows)
    if len(batch) > STORE_BATCH_ROWS_MAX:
        raise LimitExceededError(
            f"{len(batch)} rows in one call; STORE_BATCH_ROWS_MAX is {STORE_BATCH_ROWS_MAX}"
        )
    return batch


def _still_pending() -> sa.Select[Any]:
    """Transfers whose latest audit event is ``pending``, each with that event's engine
    timestamp (the hold's creation in the engine) as ``pending_timestamp``."""
    latest = audit_events.alias("latest")
    latest_seq = (
        sa.select(sa.func.max(latest.c.seq))
        .where(latest.c.transfer_id == transfers.c.id)
        .scalar_subquery()
    )
    return (
        sa.select(transfers, audit_events.c.engine_timestamp.label("pending_timestamp"))
        .select_from(transfers)
        .join(audit_events, audit_events.c.seq == latest_seq)
        .where(audit_events.c.kind == EventKind.PENDING.value)
    )


def _check_limit(limit: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be a positive int, got {limit!r}")
    if limit > STORE_PAGE_ROWS_MAX:
        raise LimitExceededError(f"limit {limit} exceeds STORE_PAGE_ROWS_MAX={STORE_PAGE_ROWS_MAX}")


def _bounded(rows: Sequence[_T], limit: int, what: str) -> Sequence[_T]:
    # The query asked for one row more than the limit: its presence means there are more.
    if len(rows) > limit:
        raise LimitExceededError(f"more than {limit} {what}; nothing is truncated silently")
    return rows


def _account_from_row(row: sa.Row[Any]) -> AccountRecord:
    m = row._mapping
    return AccountRecord(
        id=m["id"],
        account_type=m["account_type"],
        owner_id=m["owner_id"],
        ledger=m["ledger"],
        code=m["code"],
        name=m["name"],
        status=AccountStatus(m["status"]),
        freeze_transfer_id=m["freeze_transfer_id"],
        metadata=m["metadata"],
        control=m["control"],
        flow_ref=m["flow_ref"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _intent_from_row(row: sa.Row[Any]) -> TransferIntent:
    m = row._mapping
    return TransferIntent(**{name: m[name] for name in INTENT_COLUMNS})


def _key_from_row(row: sa.Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        secret_hash=row.secret_hash,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        owner_id=row.owner_id,
        rate_per_s=row.rate_per_s,
        burst=row.burst,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _ended(rate: ExchangeRate, at: datetime) -> bool:
    return rate.valid_until is not None and rate.valid_until <= at


def _rate_from_row(row: sa.Row[Any]) -> ExchangeRate:
    m = row._mapping
    return ExchangeRate(
        seq=int(m["seq"]),
        source_ledger=m["source_ledger"],
        target_ledger=m["target_ledger"],
        rate=m["rate"],
        valid_from=m["valid_from"],
        valid_until=m["valid_until"],
        source=m["source"],
        set_by=m["set_by"],
        created_at=m["created_at"],
    )


def _quote_from_row(row: sa.Row[Any]) -> ExchangeQuote:
    m = row._mapping
    return ExchangeQuote(**{column.name: m[column.name] for column in exchange_quotes.c})


def _fee_from_row(row: sa.Row[Any]) -> MerchantFee:
    m = row._mapping
    return MerchantFee(
        seq=int(m["seq"]),
        account_id=m["account_id"],
        fee_bps=m["fee_bps"],
        fee_fixed_minor=m["fee_fixed_minor"],
        fee_payer=m["fee_payer"],
        set_by=m["set_by"],
        created_at=m["created_at"],
    )


def _event_from_row(row: sa.Row[Any]) -> AuditEvent:
    m = row._mapping
    return AuditEvent(
        seq=int(m["seq"]),
        kind=EventKind(m["kind"]),
        transfer_id=m["transfer_id"],
        account_id=m["account_id"],
        status=m["status"],
        engine_timestamp=m["engine_timestamp"],
        detail=m["detail"],
        recorded_at=m["recorded_at"],
    )


def _appended(seq: int, row: tuple[Any, ...], event: NewAuditEvent) -> AuditEvent:
    # The row holds the event's validated, normalised values (rows.EVENT_COLUMNS order); its
    # detail is JSON text there, so the event's own mapping is copied instead.
    transfer_id, account_id, kind, status, engine_timestamp, _, recorded_at = row
    return AuditEvent(
        seq=seq,
        kind=EventKind(kind),
        transfer_id=transfer_id,
        account_id=account_id,
        status=status,
        engine_timestamp=engine_timestamp,
        detail=dict(event.detail),
        recorded_at=recorded_at,
    )


def _delivery_values(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "endpoint_id": delivery.endpoint_id,
        "event_seq": delivery.event_seq,
        "attempt": delivery.attempt,
        "status_code": delivery.status_code,
        "latency_ms": delivery.latency_ms,
        "error": None if delivery.error is None else delivery.error[:255],
        "attempted_at": delivery.attempted_at,
    }


def _endpoint_values(endpoint: WebhookEndpoint) -> dict[str, Any]:
    sub = endpoint.subscription
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "owner_id": endpoint.owner_id,
        "subscription": {
            "kinds": [str(k) for k in sub.kinds],
            "ledgers": list(sub.ledgers),
            "owners": list(sub.owners),
            "codes": list(sub.codes),
        },
        "secret": endpoint.secret,
        "previous_secret": endpoint.previous_secret,
        "previous_secret_until": endpoint.previous_secret_until,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failure_count": endpoint.failure_count,
        "cursor": endpoint.cursor,
        "generation": endpoint.generation,
    }


def _endpoint_from_row(row: sa.Row[Any]) -> WebhookEndpoint:
    m = dict(row._mapping)
    sub = m.pop("subscription") or {}
    return WebhookEndpoint(
        **m,
        subscription=WebhookSubscription(
            kinds=tuple(EventKind(k) for k in sub.get("kinds", ())),
            ledgers=tuple(int(v) for v in sub.get("ledgers", ())),
            owners=tuple(str(v) for v in sub.get("owners", ())),
            codes=tuple(int(v) for v in sub.get("codes", ())),
        ),
    )


def _owned_by(owners: Sequence[str]) -> sa.ColumnElement[bool]:
    # An account event is the owner's when the account is; a transfer event when either side is
    # (the owner filter of the transfer listings, `touching_owner`, for one owner at a time).
    touching = [touching_owner(owner) for owner in owners]
    return sa.or_(accounts.c.owner_id.in_(list(owners)), *touching)


def _subscribed(endpoint: WebhookEndpoint) -> list[sa.ColumnElement[bool]]:
    """The conditions on an audit event (joined to its transfer and account) that the endpoint
    may see and asked for."""
    sub = endpoint.subscription
    conditions: list[sa.ColumnElement[bool]] = []
    if endpoint.owner_id is not None:
        conditions.append(_owned_by([endpoint.owner_id]))
    if sub.owners:
        conditions.append(_owned_by(sub.owners))
    if sub.kinds:
        conditions.append(audit_events.c.kind.in_([str(k) for k in sub.kinds]))
    if sub.ledgers:
        ledgers = list(sub.ledgers)
        conditions.append(sa.or_(transfers.c.ledger.in_(ledgers), accounts.c.ledger.in_(ledgers)))
    if sub.codes:
        codes = list(sub.codes)
        conditions.append(sa.or_(transfers.c.code.in_(codes), accounts.c.code.in_(codes)))
    return conditions
