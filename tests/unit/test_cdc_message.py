"""The change-stream message codec reproduces `tigerbeetle amqp`'s JSON byte for byte.

The two expected bodies are the ones TigerBeetle's own test of its CDC message (runner.zig)
checks: every field zero, and every field at its type's maximum.
"""

from __future__ import annotations

import pytest

from tbledger.cdc import (
    ChangeAccount,
    ChangeEvent,
    ChangeEventError,
    ChangeEventType,
    ChangeTransfer,
    decode,
    encode_body,
    headers,
)

U128 = (1 << 128) - 1
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

ZERO_BODY = (
    b'{"timestamp":0,"type":"single_phase","ledger":0,"transfer":{"id":0,"amount":0,'
    b'"pending_id":0,"user_data_128":0,"user_data_64":0,"user_data_32":0,"timeout":0,"code":0,'
    b'"flags":0,"timestamp":0},"debit_account":{"id":0,"debits_pending":0,"debits_posted":0,'
    b'"credits_pending":0,"credits_posted":0,"user_data_128":0,"user_data_64":0,'
    b'"user_data_32":0,"code":0,"flags":0,"timestamp":0},"credit_account":{"id":0,'
    b'"debits_pending":0,"debits_posted":0,"credits_pending":0,"credits_posted":0,'
    b'"user_data_128":0,"user_data_64":0,"user_data_32":0,"code":0,"flags":0,"timestamp":0}}'
)
_M = b'"340282366920938463463374607431768211455"'
_M64 = b'"18446744073709551615"'
_ACCOUNT_MAX = (
    b'{"id":'
    + _M
    + b',"debits_pending":'
    + _M
    + b',"debits_posted":'
    + _M
    + b',"credits_pending":'
    + _M
    + b',"credits_posted":'
    + _M
    + b',"user_data_128":'
    + _M
    + b',"user_data_64":'
    + _M64
    + b',"user_data_32":4294967295,"code":65535,"flags":65535,'
    b'"timestamp":' + _M64 + b"}"
)
MAX_BODY = (
    b'{"timestamp":' + _M64 + b',"type":"two_phase_pending","ledger":4294967295,"transfer":'
    b'{"id":'
    + _M
    + b',"amount":'
    + _M
    + b',"pending_id":'
    + _M
    + b',"user_data_128":'
    + _M
    + b',"user_data_64":'
    + _M64
    + b',"user_data_32":4294967295,"timeout":4294967295,'
    b'"code":65535,"flags":65535,"timestamp":'
    + _M64
    + b'},"debit_account":'
    + _ACCOUNT_MAX
    + b',"credit_account":'
    + _ACCOUNT_MAX
    + b"}"
)


def _event(kind: ChangeEventType, n128: int, n64: int, n32: int, n16: int) -> ChangeEvent:
    account = ChangeAccount(
        id=n128,
        debits_pending=n128,
        debits_posted=n128,
        credits_pending=n128,
        credits_posted=n128,
        user_data_128=n128,
        user_data_64=n64,
        user_data_32=n32,
        code=n16,
        flags=n16,
        timestamp=n64,
    )
    transfer = ChangeTransfer(
        id=n128,
        amount=n128,
        pending_id=n128,
        user_data_128=n128,
        user_data_64=n64,
        user_data_32=n32,
        timeout=n32,
        code=n16,
        flags=n16,
        timestamp=n64,
    )
    return ChangeEvent(
        timestamp=n64,
        type=kind,
        ledger=n32,
        transfer=transfer,
        debit_account=account,
        credit_account=account,
    )


@pytest.mark.parametrize(
    ("event", "body"),
    [
        (_event(ChangeEventType.SINGLE_PHASE, 0, 0, 0, 0), ZERO_BODY),
        (_event(ChangeEventType.TWO_PHASE_PENDING, U128, U64, U32, 65535), MAX_BODY),
    ],
    ids=["zero", "max"],
)
def test_body_is_tigerbeetles_byte_for_byte(event: ChangeEvent, body: bytes) -> None:
    assert encode_body(event) == body
    assert decode(body) == event


@pytest.mark.parametrize("value", [(1 << 53) - 1, 1 << 53])
def test_numbers_at_the_portable_bound(value: int) -> None:
    event = _event(ChangeEventType.TWO_PHASE_EXPIRED, value, value, 7, 1)
    body = encode_body(event)
    quoted = f'"timestamp":"{value}"' if value >= 1 << 53 else f'"timestamp":{value}'
    assert body.startswith(("{" + quoted).encode())
    assert decode(body) == event


def test_headers_name_type_ledger_and_codes() -> None:
    event = _event(ChangeEventType.TWO_PHASE_POSTED, 5, 6, 700, 12)
    assert headers(event) == {
        "event_type": "two_phase_posted",
        "ledger": 700,
        "transfer_code": 12,
        "debit_account_code": 12,
        "credit_account_code": 12,
    }


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        ZERO_BODY.replace(b'"single_phase"', b'"teleported"'),
        ZERO_BODY.replace(b'"ledger":0', b'"ledger":-1'),
        ZERO_BODY.replace(b'"ledger":0', b'"ledger":"0"'),
        ZERO_BODY.replace(b'"amount":0', b'"amount":0.0'),
        ZERO_BODY.replace(b'"amount":0', b'"amount":true'),
        ZERO_BODY.replace(b'"code":0,"flags":0,"timestamp":0}', b'"code":0,"timestamp":0}', 1),
        MAX_BODY.replace(_M, b"340282366920938463463374607431768211456", 1),
        MAX_BODY.replace(_M64, b"18446744073709551615", 1),
    ],
    ids=[
        "not-json",
        "not-object",
        "unknown-type",
        "negative",
        "small-as-string",
        "float",
        "bool",
        "missing-field",
        "u128-overflow-unquoted",
        "large-as-number",
    ],
)
def test_anything_else_is_refused(body: bytes) -> None:
    with pytest.raises(ChangeEventError):
        decode(body)
