"""Engine selection: a URL (or the specification's environment variables) names the engine, and
host names are resolved to the IP literals the official client requires."""

from __future__ import annotations

import pytest
import tigerbeetle as tb

from tbledger.embedded import ClientAsync as EmbeddedAsync
from tbledger.embedded import ClientSync as EmbeddedSync
from tbledger.engine import (
    EngineConfig,
    connect,
    connect_sync,
    parse_engine_url,
    resolve_addresses,
)
from tbledger.errors import ConfigurationError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://", EngineConfig(kind="memory")),
        ("memory://?cluster_id=5", EngineConfig(kind="memory", cluster_id=5)),
        ("embedded:///var/lib/l.tbj", EngineConfig(kind="embedded", path="/var/lib/l.tbj")),
        ("embedded://ledger.tbj", EngineConfig(kind="embedded", path="ledger.tbj")),
        (
            "tigerbeetle://10.0.0.1:3000,10.0.0.2:3000?cluster_id=7",
            EngineConfig(
                kind="tigerbeetle", cluster_id=7, addresses=("10.0.0.1:3000", "10.0.0.2:3000")
            ),
        ),
        (
            "tigerbeetle://3000?cluster_id=0x10",
            EngineConfig(kind="tigerbeetle", cluster_id=16, addresses=("3000",)),
        ),
    ],
)
def test_urls_name_engines(url: str, expected: EngineConfig) -> None:
    assert parse_engine_url(url, env={}) == expected


@pytest.mark.parametrize(
    "url",
    [
        "redis://x",
        "memory://?cluster=1",
        "memory://?cluster_id=abc",
        "memory://?cluster_id=-1",
        f"memory://?cluster_id={1 << 128}",
        "embedded://",
        "tigerbeetle://?cluster_id=1",
        "tigerbeetle://1,2,3,4,5,6,7",
    ],
)
def test_bad_urls_are_refused_with_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_engine_url(url, env={})


def test_environment_selects_a_real_cluster_the_way_the_specification_does() -> None:
    env = {"TIGERBEETLE_ADDRESSES": "10.0.0.1:3000,10.0.0.2:3000", "TIGERBEETLE_CLUSTER_ID": "9"}
    assert parse_engine_url(None, env=env) == EngineConfig(
        kind="tigerbeetle", cluster_id=9, addresses=("10.0.0.1:3000", "10.0.0.2:3000")
    )


def test_engine_url_variable_wins_over_the_cluster_variables() -> None:
    env = {"TBLEDGER_ENGINE_URL": "memory://", "TIGERBEETLE_ADDRESSES": "3000"}
    assert parse_engine_url(None, env=env).kind == "memory"


def test_no_configuration_means_the_in_memory_twin() -> None:
    assert parse_engine_url(None, env={}) == EngineConfig(kind="memory")


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (("3000",), "127.0.0.1:3000"),
        (("10.1.2.3",), "10.1.2.3:3001"),
        (("localhost:3000",), "127.0.0.1:3000"),
        (("[::1]:3000", "127.0.0.1:4000"), "[::1]:3000,127.0.0.1:4000"),
    ],
)
def test_host_names_are_resolved_to_ip_literals(addresses: tuple[str, ...], expected: str) -> None:
    assert resolve_addresses(addresses) == expected


def test_unresolvable_host_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        resolve_addresses(("no-such-host.invalid:3000",))


def test_connect_sync_returns_the_twin_for_memory_and_embedded(tmp_path: object) -> None:
    client = connect_sync("memory://")
    assert isinstance(client, EmbeddedSync)
    client.close()
    durable = connect_sync(f"embedded://{tmp_path}/l.tbj")
    assert isinstance(durable, EmbeddedSync)
    assert durable.create_accounts([tb.Account(id=1, ledger=1, code=1)])[0].status == (
        tb.CreateAccountStatus.CREATED
    )
    durable.close()
    reopened = connect_sync(f"embedded://{tmp_path}/l.tbj")
    assert [a.id for a in reopened.lookup_accounts([1])] == [1]
    reopened.close()


async def test_connect_returns_async_clients() -> None:
    client = await connect("memory://")
    assert isinstance(client, EmbeddedAsync)
    await client.close()
    real = await connect("tigerbeetle://localhost:3999?cluster_id=0")
    # Construction does not contact the cluster; the client was built with a resolved address.
    assert isinstance(real, tb.ClientAsync)
    await real.close()
