"""Account types, their normal side, and balances that mean what users think they mean.

TigerBeetle keeps four raw counters per account. Which of them is "the balance" depends on the
account's normal side (DESIGN §5): a user's wallet is credit-normal (money in is a credit), a
treasury that issues money is debit-normal. `Balance` keeps the raw counters and derives, on the
normal side:

* ``posted``: what has settled (credits minus debits for a credit-normal account);
* ``available``: posted minus outgoing holds — what can be spent now;
* ``pending``: incoming holds not yet posted; ``held``: outgoing holds.

The seed's ``available + pending`` is not a balance anyone can spend and is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import tigerbeetle as tb

__all__ = [
    "ACCOUNT_TYPE_CODES",
    "AccountType",
    "Balance",
    "NormalSide",
    "default_flags",
    "normal_side",
]


class AccountType(StrEnum):
    USER = "user"
    MERCHANT = "merchant"
    TREASURY = "treasury"
    ESCROW = "escrow"
    FEE_POOL = "fee_pool"
    ANCHOR = "anchor"
    SYSTEM_BUFFER = "system_buffer"
    # The counterparty of freeze/close transfers (DESIGN §4): one per ledger, debit-normal.
    CONTROL = "control"


class NormalSide(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


# The specification's account codes; CONTROL takes the system buffer's code family.
ACCOUNT_TYPE_CODES: dict[AccountType, int] = {
    AccountType.USER: 1,
    AccountType.MERCHANT: 2,
    AccountType.TREASURY: 3,
    AccountType.ESCROW: 4,
    AccountType.FEE_POOL: 5,
    AccountType.ANCHOR: 6,
    AccountType.SYSTEM_BUFFER: 7,
    AccountType.CONTROL: 8,
}

_CREDIT_NORMAL = frozenset(
    {AccountType.USER, AccountType.MERCHANT, AccountType.ESCROW, AccountType.FEE_POOL}
)

_NOT_OVERDRAWN = tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
_NOT_OVERISSUED = tb.AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS


def normal_side(account_type: str) -> NormalSide:
    """Credit-normal for holders of money (users, merchants, escrow, fees), else debit-normal."""
    try:
        kind = AccountType(account_type)
    except ValueError:
        return NormalSide.CREDIT
    return NormalSide.CREDIT if kind in _CREDIT_NORMAL else NormalSide.DEBIT


def default_flags(account_type: str) -> tb.AccountFlags:
    """The engine flags an account of this type gets unless the caller chooses others.

    Holders of money can never be overdrawn (the engine refuses it, race-free) and keep balance
    history for statements. A treasury can never pay out more than came in. Control, anchor and
    buffer accounts are unconstrained system accounts.
    """
    try:
        kind = AccountType(account_type)
    except ValueError:
        return _NOT_OVERDRAWN | tb.AccountFlags.HISTORY
    if kind in _CREDIT_NORMAL:
        return _NOT_OVERDRAWN | tb.AccountFlags.HISTORY
    if kind is AccountType.TREASURY:
        return _NOT_OVERISSUED | tb.AccountFlags.HISTORY
    return tb.AccountFlags.NONE


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's raw counters and its balances on its normal side, all in minor units."""

    account_id: int
    ledger: int
    normal_side: NormalSide
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    closed: bool = False

    @classmethod
    def of(cls, account: tb.Account, side: NormalSide) -> Balance:
        return cls(
            account_id=account.id,
            ledger=account.ledger,
            normal_side=side,
            debits_pending=account.debits_pending,
            debits_posted=account.debits_posted,
            credits_pending=account.credits_pending,
            credits_posted=account.credits_posted,
            closed=bool(account.flags & tb.AccountFlags.CLOSED),
        )

    @property
    def posted(self) -> int:
        if self.normal_side is NormalSide.CREDIT:
            return self.credits_posted - self.debits_posted
        return self.debits_posted - self.credits_posted

    @property
    def held(self) -> int:
        """Outgoing holds: reserved by pending transfers away from this account."""
        if self.normal_side is NormalSide.CREDIT:
            return self.debits_pending
        return self.credits_pending

    @property
    def available(self) -> int:
        """Posted minus outgoing holds: what this account can move now."""
        return self.posted - self.held

    @property
    def pending(self) -> int:
        """Incoming holds: reserved toward this account, not yet posted."""
        if self.normal_side is NormalSide.CREDIT:
            return self.credits_pending
        return self.debits_pending
