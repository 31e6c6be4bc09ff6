"""The conformance suite runs every case against each engine: the embedded twin always, and a real
TigerBeetle when one is available (otherwise those cases skip with the reason).

Tests get an `engine` with a sync client (`engine.client`), a way to let engine time pass
(`engine.advance(seconds)`: the twin's clock moves instantly, a real server is waited for) and
`engine.ids(n)` for fresh ids. A real server is shared by the whole session, so tests use fresh ids
and scope queries by a fresh ledger/code/user_data; they never assume an empty database.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import tigerbeetle as tb

from tbledger.embedded import ClientSync, ManualClock
from tests.support.book import Book
from tests.support.tbserver import RealServer

_ledgers = itertools.count(1000)


@dataclass
class EngineUnderTest:
    name: str
    client: Any  # tigerbeetle.ClientSync or tbledger.embedded.ClientSync: the same interface
    advance: Callable[[float], None]
    real: bool
    _ledger: Iterator[int] = field(default_factory=lambda: _ledgers)

    def ids(self, n: int) -> list[int]:
        """`n` fresh, increasing ids."""
        return [tb.id() for _ in range(n)]

    def ledger(self) -> int:
        """A ledger number no other test in this session uses (to scope queries)."""
        return next(self._ledger)


@pytest.fixture(scope="session")
def _real_client(tb_real_server: RealServer) -> Iterator[tb.ClientSync]:
    client = tb.ClientSync(
        cluster_id=tb_real_server.cluster_id, replica_addresses=tb_real_server.addresses
    )
    yield client
    client.close()


@pytest.fixture(params=["embedded", "real"])
def engine(request: pytest.FixtureRequest) -> Iterator[EngineUnderTest]:
    if request.param == "embedded":
        clock = ManualClock()
        with ClientSync(cluster_id=0, clock=clock) as client:
            yield EngineUnderTest("embedded", client, clock.advance, real=False)
    else:
        client = request.getfixturevalue("_real_client")
        yield EngineUnderTest("real", client, time.sleep, real=True)


@pytest.fixture
def book(engine: EngineUnderTest) -> Book:
    """A fresh ledger on the engine under test, with shorthands to open accounts and transfer."""
    return Book(engine)
