"""Fixtures shared by every test: the real TigerBeetle server, when one can be had."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.tbserver import RealServer, real_server, real_server_reason


@pytest.fixture(scope="session")
def tb_real_server() -> Iterator[RealServer]:
    """A real TigerBeetle cluster for this session, or a skip that says why there is none."""
    reason = real_server_reason()
    if reason is not None:
        pytest.skip(reason)
    with real_server() as server:
        yield server
