"""The engine port, as typing protocols over the official client's own types.

``tigerbeetle.ClientAsync`` and ``tbledger.embedded.ClientAsync`` both satisfy ``EngineClient``;
their sync twins satisfy ``EngineClientSync``. Nothing here adds vocabulary: the methods, argument
and result types are the official client's.
"""

from __future__ import annotations

from typing import Protocol

from tigerbeetle import (
    Account,
    AccountBalance,
    AccountFilter,
    CreateAccountResult,
    CreateTransferResult,
    QueryFilter,
    Transfer,
)

__all__ = ["EngineClient", "EngineClientSync"]


class EngineClient(Protocol):
    """The async engine port: TigerBeetle's eight operations."""

    async def create_accounts(self, accounts: list[Account]) -> list[CreateAccountResult]: ...

    async def create_transfers(self, transfers: list[Transfer]) -> list[CreateTransferResult]: ...

    async def lookup_accounts(self, accounts: list[int]) -> list[Account]: ...

    async def lookup_transfers(self, transfers: list[int]) -> list[Transfer]: ...

    async def get_account_transfers(self, filter: AccountFilter) -> list[Transfer]: ...

    async def get_account_balances(self, filter: AccountFilter) -> list[AccountBalance]: ...

    async def query_accounts(self, query_filter: QueryFilter) -> list[Account]: ...

    async def query_transfers(self, query_filter: QueryFilter) -> list[Transfer]: ...

    async def close(self) -> None: ...


class EngineClientSync(Protocol):
    """The sync engine port: TigerBeetle's eight operations."""

    def create_accounts(self, accounts: list[Account]) -> list[CreateAccountResult]: ...

    def create_transfers(self, transfers: list[Transfer]) -> list[CreateTransferResult]: ...

    def lookup_accounts(self, accounts: list[int]) -> list[Account]: ...

    def lookup_transfers(self, transfers: list[int]) -> list[Transfer]: ...

    def get_account_transfers(self, filter: AccountFilter) -> list[Transfer]: ...

    def get_account_balances(self, filter: AccountFilter) -> list[AccountBalance]: ...

    def query_accounts(self, query_filter: QueryFilter) -> list[Account]: ...

    def query_transfers(self, query_filter: QueryFilter) -> list[Transfer]: ...

    def close(self) -> None: ...
