"""The accounts the payment flows keep for themselves: each ledger's system accounts (treasury,
fee pool, buffer, liquidity, anchor: their types and the flags that make the engine enforce their
limits) and the per-flow accounts (a payment's refundable account, a contract's escrow), with the
unique names they are found again by. Data only; the engine creates and reads them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import tigerbeetle as tb

from tbledger.balances import AccountType

__all__ = [
    "ANCHOR",
    "BUFFER",
    "ESCROW_FLAGS",
    "ESCROW_KIND",
    "FEE_POOL",
    "LIQUIDITY",
    "REFUNDABLE_FLAGS",
    "REFUNDABLE_KIND",
    "ROLES",
    "TREASURY",
    "Role",
    "scoped_name",
]

_AF = tb.AccountFlags
_NOT_OVERDRAWN = _AF.DEBITS_MUST_NOT_EXCEED_CREDITS
_NOT_OVERISSUED = _AF.CREDITS_MUST_NOT_EXCEED_DEBITS

TREASURY = "treasury"
FEE_POOL = "fee_pool"
BUFFER = "buffer"
LIQUIDITY = "liquidity"
ANCHOR = "anchor"


@dataclass(frozen=True, slots=True)
class Role:
    account_type: AccountType
    flags: tb.AccountFlags


ROLES: Final[Mapping[str, Role]] = {
    TREASURY: Role(AccountType.TREASURY, _NOT_OVERISSUED | _AF.HISTORY),
    FEE_POOL: Role(AccountType.FEE_POOL, _NOT_OVERDRAWN | _AF.HISTORY),
    BUFFER: Role(AccountType.SYSTEM_BUFFER, _NOT_OVERISSUED | _AF.HISTORY),
    LIQUIDITY: Role(AccountType.SYSTEM_BUFFER, _NOT_OVERDRAWN | _AF.HISTORY),
    ANCHOR: Role(AccountType.ANCHOR, _NOT_OVERDRAWN | _AF.HISTORY),
}
REFUNDABLE_FLAGS: Final = _NOT_OVERDRAWN
ESCROW_FLAGS: Final = _NOT_OVERDRAWN | _AF.HISTORY
# The `control` kinds of flow accounts.
REFUNDABLE_KIND: Final = "refundable"
ESCROW_KIND: Final = "escrow"


def scoped_name(kind: str, scope: str, ref: str) -> str:
    """The unique name of a flow account: its kind, its owner's namespace (hashed, so an owner
    id of any length or spelling fits the column) and the payment or contract id."""
    digest = hashlib.blake2b(scope.encode(), digest_size=8).hexdigest()
    return f"{kind}:{digest}:{ref}"
