"""Requests to intents, with no I/O: the first step of a write (DESIGN §3, "validate").

Every public write of the service turns its caller's request into `TransferIntent`s here: types,
ranges, u128 bounds and the id rule (`tbledger.ids.parse_object_id`) are checked, ids minted,
flags set, chains linked, and a ledger or code given by its chart name resolved to its number
through the service's `Chart` (the chart's own lookup, the one the API and the flows use). Nothing
here reads the store or the engine, so a bad request is refused before anything is written. The
common case (plain ints in range) is checked in one expression: this runs once per transfer on
the hot path, and a name takes the field-by-field path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import tigerbeetle as tb

from tbledger.balances import (
    AccountType,
)
from tbledger.chart import Chart
from tbledger.errors import (
    ValidationError,
)
from tbledger.ids import format_id, parse_object_id
from tbledger.limits import (
    U16_MAX,
    U32_MAX,
    U64_MAX,
)
from tbledger.model import (
    TransferIntent,
)
from tbledger.service._values import PendingResolution, TransferFields, TransferRequest

_F = tb.TransferFlags
# Flag values as plain ints: IntFlag arithmetic costs microseconds per operation, and the write
# path does it for every transfer.
_PENDING = int(_F.PENDING)
_BALANCING_DEBIT = int(_F.BALANCING_DEBIT)
_BALANCING_CREDIT = int(_F.BALANCING_CREDIT)


AMOUNT_MAX = tb.AMOUNT_MAX


# The transfer code of freeze, unfreeze and close transfers (not a business code).
CONTROL_TRANSFER_CODE = U16_MAX


PURPOSE = "purpose"


def checked_uint(name: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValidationError(f"{name} must be in [0, {maximum}], got {value}")
    return int(value)


def checked_amount(value: object) -> int:
    return checked_uint("amount", value, AMOUNT_MAX)


def checked_object_id(name: str, value: object) -> int:
    return parse_object_id(value, name)


def ledger_number(chart: Chart, ledger: object) -> int:
    """A ledger's engine number: an int as given (a u32), a str through the chart (its name, or
    its number in digits); a name the chart lacks raises `UnknownLedgerError`."""
    if isinstance(ledger, str):
        return chart.ledger(ledger).code
    return checked_uint("ledger", ledger, U32_MAX)


def transfer_code_number(chart: Chart, code: object) -> int:
    """A transfer code's engine number: an int as given (a u16), a str through the chart;
    a name the chart lacks raises `UnknownCodeError`."""
    if isinstance(code, str):
        return chart.transfer_code(code).code
    return checked_uint("code", code, U16_MAX)


def account_code_number(chart: Chart, code: object) -> int:
    """An account code's engine number: an int as given (a u16), a str through the chart;
    a name the chart lacks raises `UnknownCodeError`."""
    if isinstance(code, str):
        return chart.account_code(code).code
    return checked_uint("code", code, U16_MAX)


def known_account_type(account_type: str) -> bool:
    try:
        AccountType(account_type)
    except ValueError:
        return False
    return True


_REQUIRED_FIELDS = frozenset({"debit_account_id", "credit_account_id", "amount", "ledger", "code"})


def request_of(request: TransferRequest | None, fields: TransferFields) -> TransferRequest:
    """The request given, or the one its fields make; not both."""
    if request is None:
        missing = _REQUIRED_FIELDS - fields.keys()
        if missing:
            raise ValidationError(f"missing transfer fields: {', '.join(sorted(missing))}")
        return TransferRequest(**fields)
    if fields:
        raise ValidationError("pass a TransferRequest or its fields by keyword, not both")
    return request


def intent_of(req: TransferRequest, *, pending: bool, chart: Chart) -> TransferIntent:
    debit = req.debit_account_id
    credit = req.credit_account_id
    amount = req.amount
    ledger = req.ledger
    code = req.code
    timeout = req.timeout
    # The common case, checked in one expression: plain ints in range and nothing else to look
    # at. Anything else (a string id, a bool, a bound crossed, a balancing flag, user data) takes
    # the field-by-field path below, which names the offending field.
    if (
        type(debit) is int
        and type(credit) is int
        and type(amount) is int
        and type(ledger) is int
        and type(code) is int
        and type(timeout) is int
        and 0 < debit < AMOUNT_MAX
        and 0 < credit < AMOUNT_MAX
        and debit != credit
        and 0 <= amount <= AMOUNT_MAX
        and 0 < ledger <= U32_MAX
        and 0 < code <= U16_MAX
        and (timeout == 0 or (pending and 0 < timeout <= U32_MAX))
        and not req.balancing_debit
        and not req.balancing_credit
        and req.user_data_128 == 0
        and req.user_data_64 == 0
        and req.user_data_32 == 0
        and type(req.user_data_128) is int
        and type(req.user_data_64) is int
        and type(req.user_data_32) is int
    ):
        transfer_id = req.transfer_id
        if transfer_id is None:
            transfer_id = tb.id()
        elif type(transfer_id) is not int or not 0 < transfer_id < AMOUNT_MAX:
            transfer_id = checked_object_id("transfer_id", transfer_id)
        return TransferIntent(
            id=transfer_id,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            ledger=ledger,
            code=code,
            timeout=timeout,
            flags=_PENDING if pending else 0,
            payment_id=req.payment_id,
            event_id=req.event_id,
            chain_tx_hash=req.chain_tx_hash,
            idempotency_key=req.idempotency_key,
            metadata=dict(req.metadata) if req.metadata else {},
        )
    return checked_intent_of(req, pending=pending, chart=chart)


def checked_intent_of(req: TransferRequest, *, pending: bool, chart: Chart) -> TransferIntent:
    debit = checked_object_id("debit_account_id", req.debit_account_id)
    credit = checked_object_id("credit_account_id", req.credit_account_id)
    if debit == credit:
        raise ValidationError("debit and credit accounts must be different")
    ledger = ledger_number(chart, req.ledger)
    code = transfer_code_number(chart, req.code)
    if ledger == 0 or code == 0:
        raise ValidationError("ledger and code must not be 0")
    timeout = checked_uint("timeout", req.timeout, U32_MAX)
    if timeout and not pending:
        raise ValidationError("only a pending transfer has a timeout")
    transfer_id = (
        tb.id() if req.transfer_id is None else checked_object_id("transfer_id", req.transfer_id)
    )
    flags = _PENDING if pending else 0
    if req.balancing_debit:
        flags |= _BALANCING_DEBIT
    if req.balancing_credit:
        flags |= _BALANCING_CREDIT
    return TransferIntent(
        id=transfer_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=checked_amount(req.amount),
        ledger=ledger,
        code=code,
        timeout=timeout,
        flags=flags,
        user_data_128=checked_uint("user_data_128", req.user_data_128, AMOUNT_MAX),
        user_data_64=checked_uint("user_data_64", req.user_data_64, U64_MAX),
        user_data_32=checked_uint("user_data_32", req.user_data_32, U32_MAX),
        payment_id=req.payment_id,
        event_id=req.event_id,
        chain_tx_hash=req.chain_tx_hash,
        idempotency_key=req.idempotency_key,
        metadata=dict(req.metadata),
    )


def resolution_intent(
    pending_id: int | str,
    *,
    post: bool,
    amount: int,
    transfer_id: int | str | None,
    idempotency_key: str | None,
    event_id: str | None,
    payment_id: str | None,
    metadata: Mapping[str, Any] | None,
    control: Mapping[str, Any] | None = None,
) -> TransferIntent:
    pid = checked_object_id("pending_id", pending_id)
    return TransferIntent(
        id=tb.id() if transfer_id is None else checked_object_id("transfer_id", transfer_id),
        debit_account_id=0,
        credit_account_id=0,
        amount=amount,
        pending_id=pid,
        ledger=0,
        code=0,
        flags=int(_F.POST_PENDING_TRANSFER if post else _F.VOID_PENDING_TRANSFER),
        idempotency_key=idempotency_key,
        event_id=event_id,
        payment_id=payment_id,
        metadata=dict(metadata or {}),
        control=dict(control or {}),
    )


def resolution_intents(resolutions: Sequence[PendingResolution]) -> list[TransferIntent]:
    """Posts and voids of holds, in order: a post of None posts the whole hold (AMOUNT_MAX, the
    engine's sentinel), a void moves nothing whatever its `amount`."""
    return [
        resolution_intent(
            r.pending_id,
            post=r.post,
            amount=(AMOUNT_MAX if r.amount is None else checked_amount(r.amount)) if r.post else 0,
            transfer_id=r.transfer_id,
            idempotency_key=r.idempotency_key,
            event_id=r.event_id,
            payment_id=r.payment_id,
            metadata=r.metadata,
            control=r.control,
        )
        for r in resolutions
    ]


def with_control(
    intents: list[TransferIntent], control: Sequence[Mapping[str, Any]] | None
) -> list[TransferIntent]:
    """The intents with the platform's control facts, one mapping per intent (None: none)."""
    if control is None:
        return intents
    if len(control) != len(intents):
        raise ValidationError("control needs one mapping per request")
    return [
        replace(intent, control=dict(facts)) if facts else intent
        for intent, facts in zip(intents, control, strict=True)
    ]


def control_intent(
    *,
    purpose: str,
    account_id: int,
    flags: _F,
    ledger: int,
    debit: int = 0,
    credit: int = 0,
    pending_id: int = 0,
    amount: int = 0,
    code: int = CONTROL_TRANSFER_CODE,
) -> TransferIntent:
    resolution = flags & (_F.POST_PENDING_TRANSFER | _F.VOID_PENDING_TRANSFER)
    return TransferIntent(
        id=tb.id(),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        pending_id=pending_id,
        ledger=0 if resolution else ledger,
        code=0 if resolution else code,
        flags=int(flags),
        control={PURPOSE: purpose, "account_id": format_id(account_id)},
    )


def link_chain(intents: list[TransferIntent]) -> list[TransferIntent]:
    """Link intents into one chain: every member but the last carries `linked`."""
    chain_id = intents[0].id
    last = len(intents) - 1
    return [
        replace(
            intent,
            flags=(intent.flags | int(_F.LINKED)) if k < last else (intent.flags & ~int(_F.LINKED)),
            chain_id=chain_id,
            chain_index=k,
        )
        for k, intent in enumerate(intents)
    ]


def whole_chains(intents: list[TransferIntent], size_max: int) -> list[TransferIntent]:
    """A prefix of `intents` of at most `size_max` that does not cut a chain in two."""
    if len(intents) <= size_max:
        return intents
    cut = size_max
    while (
        cut > 0
        and intents[cut].chain_id is not None
        and (intents[cut].chain_id == intents[cut - 1].chain_id)
    ):
        cut -= 1
    return intents[:cut] if cut else intents[:size_max]
