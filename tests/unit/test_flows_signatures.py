"""The shape of `SpendEngine`'s public methods, read from their signatures.

Every flow that moves money takes all of its arguments by keyword, so two accounts (or an account
and a ledger, both ``int | str``) can never be swapped by position and an amount is always named;
a read or a set-up call that names one thing may take that one thing by position. No method
takes ``**kwargs``. A money parameter is ``int`` (minor units) or `Decimal` (major units), never
``str``. Ledgers are chart names or numbers everywhere. `open_account` answers what
`LedgerService.create_account` answers.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal
from types import NoneType, UnionType
from typing import Any

import pytest

from tbledger.flows import SpendEngine
from tbledger.service import AccountInfo, LedgerService

FLOWS = [
    "authorize_anchor",
    "deposit",
    "escrow_lock",
    "escrow_release",
    "escrow_void",
    "exchange",
    "fulfill_anchor",
    "fund_liquidity",
    "pay",
    "refund",
    "release_anchor",
    "reverse_settlement",
    "settle_merchant",
    "withdraw",
]
MONEY = {"amount", "fee"}
LEDGERS = {"ledger", "source_ledger", "target_ledger", "obligation"}
P = inspect.Parameter


def _public() -> list[str]:
    return sorted(
        name
        for name, member in vars(SpendEngine).items()
        if not name.startswith("_") and inspect.isfunction(member)
    )


def _parameters(name: str) -> list[inspect.Parameter]:
    return list(inspect.signature(getattr(SpendEngine, name)).parameters.values())[1:]


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    return typing.get_type_hints(function)


def _members(hint: Any) -> set[Any]:
    """The types a hint admits (a union's members, or the hint itself)."""
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        return set(typing.get_args(hint))
    return {hint}


def test_every_flow_is_listed() -> None:
    moving = {
        name
        for name in _public()
        if "amount" in inspect.signature(getattr(SpendEngine, name)).parameters
    }
    assert moving <= set(FLOWS)


@pytest.mark.parametrize("name", FLOWS)
def test_a_flow_takes_every_argument_by_keyword(name: str) -> None:
    assert all(p.kind is P.KEYWORD_ONLY for p in _parameters(name)), name


@pytest.mark.parametrize("name", _public())
def test_no_method_takes_arbitrary_arguments_or_two_by_position(name: str) -> None:
    parameters = _parameters(name)
    assert not [p for p in parameters if p.kind in (P.VAR_KEYWORD, P.VAR_POSITIONAL)], name
    positional = [p for p in parameters if p.kind is not P.KEYWORD_ONLY]
    assert len(positional) <= 1, (name, positional)


def _named(names: Iterable[str], wanted: set[str]) -> list[tuple[str, str]]:
    return [(method, p.name) for method in names for p in _parameters(method) if p.name in wanted]


@pytest.mark.parametrize(("method", "parameter"), _named(_public(), MONEY))
def test_money_is_an_int_or_a_decimal_never_text(method: str, parameter: str) -> None:
    admitted = _members(_hints(getattr(SpendEngine, method))[parameter])
    assert admitted - {NoneType} == {int, Decimal}, (method, parameter, admitted)


@pytest.mark.parametrize(("method", "parameter"), _named(_public(), LEDGERS))
def test_ledgers_are_chart_names_or_numbers(method: str, parameter: str) -> None:
    admitted = _members(_hints(getattr(SpendEngine, method))[parameter])
    assert admitted == {int, str}, (method, parameter, admitted)


def test_open_account_answers_as_create_account_does() -> None:
    opened = _hints(SpendEngine.open_account)["return"]
    created = _hints(LedgerService.create_account)["return"]
    assert opened is created is AccountInfo
