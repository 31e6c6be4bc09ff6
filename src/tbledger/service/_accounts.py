"""Accounts: creating them, reading their balances, and their status (active, frozen, closed).

An account is two halves: the engine account, which holds the money, and its mapping in the
store (type, owner, name, the platform's control facts). `Accounts` creates the engine half
first (an engine account nobody knows of holds nothing; a mapping without one would show an
account that does not exist), reads balances from the engine on the account type's normal side,
and changes an account's status through the engine itself: a freeze or a close is a closing
pending transfer against the ledger's control account, written through the write pipeline like
any transfer (DESIGN §4). `AccountStatuses` is the other direction: when the pipeline records
such a transfer's outcome, it records the status the engine has just made effective, and it
tells a frozen account from one closed for good when the engine refuses a transfer. A ledger or
account code given by its chart name is resolved through the service's `Chart`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

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
from tbledger.errors import (
    AccountNotFoundError,
    DuplicateRecordError,
    PendingHoldsError,
    TbledgerError,
    TigerBeetleError,
    ValidationError,
)
from tbledger.events import EventBus, LedgerEvent, LedgerEventName
from tbledger.ids import format_id, parse_id
from tbledger.limits import (
    BATCH_EVENTS_MAX,
    PENDING_HOLDS_LISTED_MAX,
    U32_MAX,
    U64_MAX,
)
from tbledger.model import AccountRecord, AccountStatus, TransferIntent
from tbledger.service._gateway import EngineGateway
from tbledger.service._intents import (
    AMOUNT_MAX,
    PURPOSE,
    account_code_number,
    checked_object_id,
    checked_uint,
    control_intent,
    known_account_type,
    ledger_number,
)
from tbledger.service._outcomes import ACCOUNT_FROZEN, CLOSED_STATUSES, transfer_error
from tbledger.service._values import AccountInfo, TransferResult
from tbledger.store import Store
from tbledger.store.records import validate_account

__all__ = ["AccountStatuses", "Accounts", "TransferWrites"]

_S = tb.CreateTransferStatus
_F = tb.TransferFlags


class TransferWrites(Protocol):
    """What accounts need of the write pipeline: intents written as one call (`Writer`)."""

    async def write(
        self, intents: list[TransferIntent], *, atomic: bool
    ) -> list[TransferResult]: ...


class AccountStatuses:
    """Account status as the service records it: applied from control outcomes, read to explain
    a refusal. Only the service writes an account's status, through `apply`."""

    def __init__(self, *, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def apply(self, intents: Sequence[TransferIntent]) -> None:
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
            record = await self._store.get_account(account_id)
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
            await self._store.update_account_status(account_id, status, freeze_id)
            self._bus.emit(
                [
                    LedgerEvent(
                        LedgerEventName.ACCOUNT_STATUS_CHANGED,
                        account_id,
                        {"status": status.value, "previous": record.status.value},
                    )
                ]
            )

    async def refusal_code(
        self, status: str, *, debit_account_id: int, credit_account_id: int
    ) -> str:
        """The error code for a transfer the engine refused with `status` (see
        `LedgerService.refusal_code`)."""
        closed = _S.__members__.get(status.upper())
        if closed not in CLOSED_STATUSES:
            return status
        account_id = (
            debit_account_id if closed == _S.DEBIT_ACCOUNT_ALREADY_CLOSED else credit_account_id
        )
        record = None
        with contextlib.suppress(TbledgerError):
            record = await self._store.get_account(account_id)
        if record is not None and record.status is AccountStatus.FROZEN:
            return ACCOUNT_FROZEN
        return status


class Accounts:
    """Creates accounts, reads their balances from the engine, and changes their status."""

    def __init__(
        self,
        *,
        store: Store,
        gateway: EngineGateway,
        bus: EventBus,
        chart: Chart,
        writes: TransferWrites,
    ) -> None:
        self._store = store
        self._gateway = gateway
        self._bus = bus
        self._chart = chart
        self._writes = writes
        # Account types never change, so normal sides are cached; so are control accounts.
        self._sides_by_id: dict[int, NormalSide] = {}
        self._control_accounts: dict[int, int] = {}
        self._mappings = _GroupedInserts(store)

    # -- creating -------------------------------------------------------------------------------

    async def create_account(
        self,
        *,
        owner_id: str | None,
        account_type: str,
        ledger: int | str,
        code: int | str | None,
        name: str | None,
        metadata: Mapping[str, Any] | None,
        flags: tb.AccountFlags | None,
        account_id: int | str | None,
        control: Mapping[str, Any] | None,
        flow_ref: str | None,
        user_data_128: int,
        user_data_64: int,
        user_data_32: int,
    ) -> AccountInfo:
        """Create an account in the engine, then its mapping (see
        `LedgerService.create_account`)."""
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
        # Validate the mapping before the engine sees anything.
        validate_account(record)
        (result,) = await self._gateway.create_accounts([account])
        if result.status not in (tb.CreateAccountStatus.CREATED, tb.CreateAccountStatus.EXISTS):
            raise TigerBeetleError(
                f"the engine refused account {format_id(new_id)}: {result.status.name.lower()}",
                code=result.status.name.lower(),
                details={"account_id": format_id(new_id)},
            )
        try:
            stored = await self._mappings.insert(record)
        except DuplicateRecordError:
            existing = await self._store.get_account(new_id)
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
        self._sides_by_id[new_id] = normal_side(account_type)
        return AccountInfo(stored)

    # -- reading --------------------------------------------------------------------------------

    async def get_account(self, account_id: int | str) -> AccountInfo:
        """The account's mapping and its balance from the engine."""
        account_id = parse_id(account_id)
        record = await self._store.get_account(account_id)
        if record is None:
            raise _not_found(account_id)
        (balance,) = await self._balances([record])
        return AccountInfo(record, balance)

    async def get_accounts_by_owner(self, owner_id: str) -> list[AccountInfo]:
        """Every account of this owner, with balances (one engine lookup for all)."""
        records = await self._store.get_accounts_by_owner(owner_id)
        balances = await self._balances(records)
        return [AccountInfo(r, b) for r, b in zip(records, balances, strict=True)]

    async def get_balances(self, account_ids: Sequence[int | str]) -> list[Balance]:
        """Balances of several accounts in one engine request; unknown ids raise."""
        ids = [parse_id(a) for a in account_ids]
        if len(ids) > BATCH_EVENTS_MAX:
            raise ValidationError(f"at most {BATCH_EVENTS_MAX} accounts per call")
        sides = await self.sides(ids)
        accounts = await self._gateway.lookup_accounts(ids)
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
        accounts = await self._gateway.lookup_accounts(ids)
        by_id = {a.id: a for a in accounts}
        out: list[Balance | None] = []
        for r in records:
            self._sides_by_id[r.id] = normal_side(r.account_type)
            found = by_id.get(r.id)
            out.append(None if found is None else Balance.of(found, normal_side(r.account_type)))
        return out

    async def sides(self, ids: Sequence[int]) -> dict[int, NormalSide]:
        """Normal sides by account id; account types never change, so they are cached."""
        missing = [i for i in ids if i not in self._sides_by_id]
        if missing:
            records = await self._store.get_accounts(missing)
            for account_id in missing:
                record = records.get(account_id)
                self._sides_by_id[account_id] = (
                    NormalSide.CREDIT if record is None else normal_side(record.account_type)
                )
        return {i: self._sides_by_id[i] for i in ids}

    # -- status ---------------------------------------------------------------------------------

    async def update_account_status(
        self, account_id: int | str, status: str, *, sweep_to: int | str | None
    ) -> AccountInfo:
        """Set an account `active`, `frozen` or `closed`; the engine enforces it (see
        `LedgerService.update_account_status`)."""
        account_id = parse_id(account_id)
        try:
            target = AccountStatus(status)
        except ValueError as exc:
            raise ValidationError(
                f"unknown account status {status!r}: use active, frozen or closed"
            ) from exc
        record = await self._store.get_account(account_id)
        if record is None:
            raise _not_found(account_id)
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
        results = await self._writes.write(requests, atomic=len(requests) > 1)
        failed = [r for r in results if not r.ok]
        if failed:
            first = next((r for r in failed if r.status != "linked_event_failed"), failed[0])
            raise transfer_error(first, None, None)
        updated = await self._store.get_account(account_id)
        if updated is None:  # pragma: no cover - the account was read above
            raise AccountNotFoundError(f"no account {format_id(account_id)}")
        return AccountInfo(updated)

    async def _control_account(self, ledger: int) -> int:
        """The ledger's control account, counterparty of freeze and close transfers."""
        cached = self._control_accounts.get(ledger)
        if cached is not None:
            return cached
        name = f"system:control:{ledger}"
        record = await self._store.get_account_by_name(name)
        if record is None:
            try:
                info = await self.create_account(
                    owner_id=None,
                    account_type=AccountType.CONTROL,
                    ledger=ledger,
                    code=None,
                    name=name,
                    metadata=None,
                    flags=None,
                    account_id=None,
                    control={"system": True, "role": "control"},
                    flow_ref=None,
                    user_data_128=0,
                    user_data_64=0,
                    user_data_32=0,
                )
                record = info.record
            except DuplicateRecordError:
                record = await self._store.get_account_by_name(name)
                if record is None:
                    raise
        self._control_accounts[ledger] = record.id
        return record.id

    async def _refuse_pending_holds(self, record: AccountRecord) -> None:
        """Raise `PendingHoldsError` if holds on the account (other than its own freeze) are
        still pending by the engine's clock."""
        holds = await self._store.pending_holds_of(record.id, limit=PENDING_HOLDS_LISTED_MAX)
        holds = [(h, at) for h, at in holds if h.id != record.freeze_transfer_id]
        if not holds:
            return
        now_ns = await self._gateway.now_ns()
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


def _not_found(account_id: int) -> AccountNotFoundError:
    return AccountNotFoundError(
        f"no account {format_id(account_id)}",
        code="account_not_found",
        details={"account_id": format_id(account_id)},
    )


class _GroupedInserts:
    """Account mappings inserted by concurrent callers share one transaction (one commit): a
    flow that opens an account per payment would otherwise spend a commit, and its turn on
    SQLite's one writer, per payment. While one group is written, the next gathers. Each caller
    still returns only once its own row is committed; when a group fails on a taken id or name,
    its rows are inserted one by one, so that each caller gets its own answer."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queued: list[tuple[AccountRecord, asyncio.Future[AccountRecord]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def insert(self, record: AccountRecord) -> AccountRecord:
        future: asyncio.Future[AccountRecord] = asyncio.get_running_loop().create_future()
        self._queued.append((record, future))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write())
        # A caller that gives up leaves its row in the group: the engine holds its account.
        return await future

    async def _write(self) -> None:
        try:
            while self._queued:
                group = self._queued[:BATCH_EVENTS_MAX]
                del self._queued[: len(group)]
                await self._write_group(group)
        except BaseException:
            for _, future in self._queued:
                future.cancel()
            self._queued.clear()
            raise
        finally:
            self._writing = None

    async def _write_group(
        self, group: list[tuple[AccountRecord, asyncio.Future[AccountRecord]]]
    ) -> None:
        try:
            stored = await self._store.create_accounts([record for record, _ in group])
        except DuplicateRecordError as exc:
            if len(group) == 1:
                _settle(group[0][1], exception=exc)
                return
            for one in group:
                await self._write_group([one])
            return
        except Exception as exc:
            for _, future in group:
                _settle(future, exception=exc)
            return
        except BaseException:  # cancelled (the service closing): nobody is left waiting
            for _, future in group:
                future.cancel()
            raise
        for (_, future), row in zip(group, stored, strict=True):
            _settle(future, result=row)


def _settle(
    future: asyncio.Future[AccountRecord],
    *,
    result: AccountRecord | None = None,
    exception: BaseException | None = None,
) -> None:
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    elif result is not None:
        future.set_result(result)
