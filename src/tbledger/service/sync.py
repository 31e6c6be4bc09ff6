"""``LedgerServiceSync``: the ledger service for code without an event loop.

It does not reimplement anything: it runs a `LedgerService` on a private event loop in a daemon
thread and waits for each call's result (the approach of anyio's ``BlockingPortal``). Methods have
the async service's names and arguments. Listeners registered with `on` run on that loop's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import tigerbeetle as tb

from tbledger.balances import Balance
from tbledger.chart import Chart
from tbledger.config import Settings
from tbledger.events import Listener
from tbledger.model import AuditEvent, TransferIntent
from tbledger.service import (
    AccountInfo,
    ActivityPage,
    BalanceAsOf,
    BalanceHistory,
    Health,
    LedgerService,
    RecoveryReport,
    Statement,
    TimeLike,
    TransferFields,
    TransferPage,
    TransferRequest,
    TransferResult,
    TransferStatus,
)

__all__ = ["LedgerServiceSync"]

_T = TypeVar("_T")


class LedgerServiceSync:
    """A blocking facade over `LedgerService`; use ``with LedgerServiceSync(...) as ledger:``."""

    def __init__(
        self, settings: Settings | None = None, *, chart: Chart | None = None, **overrides: Any
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tbledger-service", daemon=True
        )
        self._thread.start()
        self.service = LedgerService(settings, chart=chart, **overrides)

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        if not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError("the service's event loop has stopped (close() was called)")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # Lifecycle.

    def connect(self, *, recover: bool = True, background: bool = False) -> None:
        self._run(self.service.connect(recover=recover, background=background))

    def close(self) -> None:
        """Close the service, then stop and join the loop thread. Idempotent."""
        if not self._thread.is_alive():
            return
        try:
            self._run(self.service.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    disconnect = close

    def __enter__(self) -> LedgerServiceSync:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb_: TracebackType | None,
    ) -> None:
        self.close()

    def health_check(self) -> Health:
        return self._run(self.service.health_check())

    def on(self, event: str, listener: Listener) -> Callable[[], None]:
        return self.service.on(event, listener)

    # Accounts and balances.

    def create_account(
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
        return self._run(
            self.service.create_account(
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
        )

    def get_account(self, account_id: int | str) -> AccountInfo:
        return self._run(self.service.get_account(account_id))

    def get_accounts_by_owner(self, owner_id: str) -> list[AccountInfo]:
        return self._run(self.service.get_accounts_by_owner(owner_id))

    def update_account_status(
        self, account_id: int | str, status: str, *, sweep_to: int | str | None = None
    ) -> AccountInfo:
        return self._run(self.service.update_account_status(account_id, status, sweep_to=sweep_to))

    def get_balance(self, account_id: int | str) -> Balance:
        return self._run(self.service.get_balance(account_id))

    def get_balances(self, account_ids: Sequence[int | str]) -> list[Balance]:
        return self._run(self.service.get_balances(account_ids))

    # Transfers.

    def create_transfer(
        self, request: TransferRequest | None = None, /, **fields: Unpack[TransferFields]
    ) -> TransferResult:
        return self._run(self.service.create_transfer(request, **fields))

    def create_pending_transfer(
        self, request: TransferRequest | None = None, /, **fields: Unpack[TransferFields]
    ) -> TransferResult:
        return self._run(self.service.create_pending_transfer(request, **fields))

    def post_pending_transfer(
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
        return self._run(
            self.service.post_pending_transfer(
                pending_id,
                amount,
                transfer_id=transfer_id,
                idempotency_key=idempotency_key,
                event_id=event_id,
                payment_id=payment_id,
                metadata=metadata,
            )
        )

    def void_pending_transfer(
        self,
        pending_id: int | str,
        *,
        transfer_id: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TransferResult:
        return self._run(
            self.service.void_pending_transfer(
                pending_id,
                transfer_id=transfer_id,
                idempotency_key=idempotency_key,
                event_id=event_id,
                payment_id=payment_id,
                metadata=metadata,
            )
        )

    def create_transfers(
        self,
        requests: Sequence[TransferRequest],
        *,
        atomic: bool = False,
        control: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TransferResult]:
        return self._run(self.service.create_transfers(requests, atomic=atomic, control=control))

    def create_pending_transfers(
        self, requests: Sequence[TransferRequest], *, atomic: bool = False
    ) -> list[TransferResult]:
        return self._run(self.service.create_pending_transfers(requests, atomic=atomic))

    def get_transfer(self, transfer_id: int | str) -> tb.Transfer | None:
        return self._run(self.service.get_transfer(transfer_id))

    def get_transfer_audit(self, transfer_id: int | str) -> list[AuditEvent]:
        return self._run(self.service.get_transfer_audit(transfer_id))

    def current_status(self, transfer_ids: Iterable[int | str]) -> dict[int, AuditEvent]:
        return self._run(self.service.current_status(transfer_ids))

    def transfer_statuses(self, transfer_ids: Iterable[int | str]) -> dict[int, TransferStatus]:
        return self._run(self.service.transfer_statuses(transfer_ids))

    def get_transfers_by_event_id(self, event_id: str) -> list[TransferIntent]:
        return self._run(self.service.get_transfers_by_event_id(event_id))

    def list_account_transfers(
        self,
        account_id: int | str,
        *,
        limit: int = 100,
        cursor: int | None = None,
        reversed_: bool = False,
    ) -> TransferPage:
        return self._run(
            self.service.list_account_transfers(
                account_id, limit=limit, cursor=cursor, reversed_=reversed_
            )
        )

    def events(
        self, since: int = 0, *, poll_s: float = 0.5, limit: int = 1000
    ) -> Iterator[AuditEvent]:
        """The durable tail of the audit log, as a blocking iterator."""
        tail = self.service.events(since, poll_s=poll_s, limit=limit)
        while True:
            try:
                yield self._run(_anext(tail))
            except StopAsyncIteration:
                return

    # Recovery.

    def recover(self, *, grace_s: float | None = None) -> RecoveryReport:
        return self._run(self.service.recover(grace_s=grace_s))

    def expire_holds(self) -> int:
        return self._run(self.service.expire_holds())

    # History, activity and statements.

    def balance_history(
        self,
        account_id: int | str,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        limit: int = 100,
        cursor: int | None = None,
        reversed_: bool = False,
    ) -> BalanceHistory:
        return self._run(
            self.service.balance_history(
                account_id, start=start, end=end, limit=limit, cursor=cursor, reversed_=reversed_
            )
        )

    def balance_as_of(self, account_id: int | str, *, as_of: TimeLike) -> BalanceAsOf:
        return self._run(self.service.balance_as_of(account_id, as_of=as_of))

    def account_activity(
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
        return self._run(
            self.service.account_activity(
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
        )

    def statement(self, account_id: int | str, *, start: TimeLike, end: TimeLike) -> Statement:
        return self._run(self.service.statement(account_id, start=start, end=end))

    @property
    def stats(self) -> Mapping[str, int]:
        return self.service.stats


async def _anext(iterator: Any) -> Any:
    return await iterator.__anext__()
