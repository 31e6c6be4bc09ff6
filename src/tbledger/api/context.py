"""What every route needs: the service, the flows, the chart, the caller, and visibility rules.

Routes stay thin: they parse with `schemas`, check the caller with the helpers here, call one
library function, and render with `render`. Visibility for owner keys lives here in one place:
an account of another owner is reported exactly as a missing one (404), so a key cannot probe
which ids exist.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tbledger.amounts import to_minor
from tbledger.api.errors import ApiError, not_found
from tbledger.api.guard import PRINCIPAL
from tbledger.api.keys import KeyRing, Principal, RateLimiter
from tbledger.api.metrics import Metrics
from tbledger.api.policy import may_see
from tbledger.chart import Chart, Ledger
from tbledger.errors import UnknownCodeError, UnknownLedgerError, ValidationError
from tbledger.flows import SpendEngine
from tbledger.ids import format_id, is_reserved_id, parse_object_id
from tbledger.limits import BATCH_EVENTS_MAX
from tbledger.model import AccountRecord
from tbledger.prices import Prices
from tbledger.service import CONTROL_TRANSFER_CODE, LedgerService

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "Admin",
    "ApiContext",
    "Caller",
    "Ctx",
    "IdempotencyKey",
    "account_id_of",
    "caller_of",
    "context_of",
    "namespaced_key",
]

# Account mappings never change their ledger, type or owner, so they are cached; status changes
# go through the API and evict the entry (another process's freeze shows within the engine's
# own refusal, which is what enforces it).
_ACCOUNT_CACHE_MAX = 100_000

# Printable ASCII, no spaces, at most 200 characters.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"


@dataclass
class ApiContext:
    service: LedgerService
    flows: SpendEngine
    chart: Chart
    keys: KeyRing
    limiter: RateLimiter
    metrics: Metrics
    prices: Prices
    _accounts: OrderedDict[int, AccountRecord] = field(default_factory=OrderedDict)

    # -- chart ----------------------------------------------------------------------------------

    def ledger(self, ref: str | int) -> Ledger:
        return self.chart.ledger(ref)

    def ledger_or_none(self, code: int) -> Ledger | None:
        try:
            return self.chart.ledger(code)
        except UnknownLedgerError:
            return None

    def account_code(self, account_type: str) -> int:
        return self.chart.account_code_for(account_type).code

    def transfer_code(self, ref: str) -> int:
        """A transfer code by chart name or number; the service's own control code is refused
        (freeze and close transfers carry it, and nothing else may)."""
        try:
            code = self.chart.transfer_code(ref).code
        except UnknownCodeError:
            if not (ref.isdigit() and 0 < int(ref) <= 0xFFFF):
                raise
            code = int(ref)
        if code == CONTROL_TRANSFER_CODE:
            raise ValidationError(f"transfer code {code} is reserved for account status changes")
        return code

    def minor(self, ledger: Ledger, amount: str, unit: str, *, allow_zero: bool = False) -> int:
        """An amount string in `unit` as minor units of `ledger`, exactly, or a 422."""
        if unit == "minor":
            if not amount.isdigit():
                raise ValidationError(f"a minor-unit amount is an integer, got {amount!r}")
            return to_minor(amount, 0, allow_zero=allow_zero)
        return ledger.to_minor(amount, allow_zero=allow_zero)

    # -- accounts and visibility ----------------------------------------------------------------

    async def accounts(self, ids: Iterable[int]) -> dict[int, AccountRecord]:
        """Account mappings by id (cached), unknown ids left out."""
        wanted = set(ids)
        found = {i: self._accounts[i] for i in wanted if i in self._accounts}
        missing = wanted - found.keys()
        if missing:
            loaded = await self.service.get_account_records(missing)
            for account_id, record in loaded.items():
                self._accounts[account_id] = record
                if len(self._accounts) > _ACCOUNT_CACHE_MAX:
                    self._accounts.popitem(last=False)
            found.update(loaded)
        return found

    async def visible_accounts(
        self, caller: Principal, ids: Iterable[int]
    ) -> dict[int, AccountRecord]:
        """Every account in `ids` if `caller` may see them all; 404 for the first it may not."""
        wanted = list(dict.fromkeys(ids))
        found = await self.accounts(wanted)
        for account_id in wanted:
            record = found.get(account_id)
            if record is None or not may_see(caller, record):
                raise not_found("account", format_id(account_id))
        return found

    def forget_account(self, account_id: int) -> None:
        self._accounts.pop(account_id, None)

    async def visible_account(self, caller: Principal, account_id: int) -> AccountRecord:
        """The account if `caller` may see it; 404 otherwise (missing or another owner's)."""
        return (await self.visible_accounts(caller, [account_id]))[account_id]


def account_id_of(text: str, name: str = "account_id") -> int:
    """A path or body id as a u128, refusing 0 and 2^128-1 (never valid account ids)."""
    return parse_object_id(text, name)


async def context_of(request: Request) -> ApiContext:
    # Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, which would
    # cost every request a thread hop.
    ctx: ApiContext = request.app.state.ctx
    return ctx


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def caller_of(scope: MutableMapping[str, Any]) -> Principal:
    """The caller `GuardMiddleware` verified and rate limited from the headers before the body
    was read; 401 on a route the guard treats as public."""
    principal = scope.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def namespaced_key(caller: Principal, raw: str) -> str:
    """An ``Idempotency-Key`` namespaced by the calling key (so keys never collide)."""
    return f"{caller.key_id}:{raw}"


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The caller behind the request's key (`caller_of`; the two header dependencies document
    the security schemes in the OpenAPI)."""
    return caller_of(request.scope)


async def require_admin(caller: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not caller.is_admin:
        raise ApiError(403, "forbidden", "this route needs an admin key")
    return caller


Caller = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(require_admin)]
Ctx = Annotated[ApiContext, Depends(context_of)]


async def idempotency_key(
    caller: Caller,
    raw: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="retry a write safely: the same key replays the first outcome",
        ),
    ] = None,
) -> str | None:
    """The request's ``Idempotency-Key``, namespaced by the calling key (so keys never collide)."""
    return None if raw is None else namespaced_key(caller, raw)


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


def derived_id(key: str, purpose: str) -> int:
    """A stable u128 id for (`purpose`, idempotency key): a retry creates the same record."""
    digest = hashlib.blake2b(f"{purpose}\0{key}".encode(), digest_size=16).digest()
    value = int.from_bytes(digest, "big")
    return 1 if is_reserved_id(value) else value


def check_batch_size(count: int) -> None:
    if count > BATCH_EVENTS_MAX:
        raise ApiError(
            413,
            "limit_exceeded",
            f"a batch holds at most {BATCH_EVENTS_MAX} transfers, got {count}",
        )
