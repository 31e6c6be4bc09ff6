"""The blocking facade has the async service's methods with the same signatures.

`LedgerServiceSync` runs a `LedgerService` on a private loop; each of its methods must take
exactly what the async method takes (names, kinds, defaults and annotations), so code moves
between the two by adding or removing ``await`` only. A method of the async service that the
facade leaves out is listed here with the reason.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from tbledger.embedded import ClientAsync
from tbledger.errors import ValidationError
from tbledger.service import LedgerService, TransferRequest
from tbledger.service.sync import LedgerServiceSync
from tbledger.store import Store


def _public_coroutines() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(LedgerService, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def test_every_wrapped_method_has_the_async_signature() -> None:
    mismatched = {}
    for name, signature in _public_coroutines().items():
        facade = getattr(LedgerServiceSync, name, None)
        if facade is None:
            continue
        sync_signature = inspect.signature(facade)
        expected = signature.replace(return_annotation=inspect.Signature.empty)
        got = sync_signature.replace(return_annotation=inspect.Signature.empty)
        if str(expected) != str(got):
            mismatched[name] = (str(expected), str(got))
    assert mismatched == {}


def test_no_method_takes_arbitrary_keywords() -> None:
    for cls in (LedgerService, LedgerServiceSync):
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") and name != "__init__":
                continue
            if name == "__init__":
                continue  # settings overrides: checked by Settings itself
            for parameter in inspect.signature(member).parameters.values():
                if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                    # Only typed keywords: `**fields: Unpack[TransferFields]`, never `Any`.
                    assert "Unpack[" in str(parameter.annotation), f"{cls.__name__}.{name}"


async def test_keywords_the_request_does_not_have_are_refused_before_anything_moves() -> None:
    engine = ClientAsync(cluster_id=0)
    store = await Store.connect("sqlite:///:memory:", migrate=True)
    service = LedgerService(engine=engine, store=store)
    fields: dict[str, Any] = {"debit_account_id": 1, "credit_account_id": 2, "amount": 1}
    try:
        await service.connect()
        with pytest.raises(TypeError):
            await service.create_transfer(**fields, ledger=1, code=1, bogus=True)
        with pytest.raises(ValidationError, match="missing transfer fields: code, ledger"):
            await service.create_transfer(**fields)
        request = TransferRequest(**fields, ledger=1, code=1)
        with pytest.raises(ValidationError, match="not both"):
            await service.create_transfer(request, amount=2)
        assert service.batcher.stats.requests == 0
    finally:
        await service.close()
        await store.close()
        await engine.close()
