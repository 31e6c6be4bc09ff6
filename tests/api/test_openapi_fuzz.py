"""Property-based requests from the app's own OpenAPI document (schemathesis).

Every operation gets schemathesis' explicit examples, its coverage cases (boundary values,
missing and mistyped fields, unexpected methods) and Hypothesis-generated positive and negative
cases. Each response is checked: never a 5xx, a documented status, the documented content type
and headers, and a body that validates against the documented schema; invalid input must be
refused with a 4xx.

The app runs with its lifespan entered on the test's event loop (the `api` fixture: the embedded
twin and a PostgreSQL store, both bound to that loop). schemathesis' own ASGI transport would run
the app, and a second lifespan, on an event loop of its own in another thread, so cases are
generated here, in a worker thread (Hypothesis is synchronous), and each one is sent through the
fixture's httpx client on the test's loop, then checked with schemathesis' checks.

Generation is derandomized and the example database is off, so a run is reproducible. Run with
``-s`` to see the request count and the histogram of statuses.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tbledger.api import mint_key
from tests.support.api import Api

REQUESTS_MIN = 2_000
# Hypothesis-generated cases per operation; the explicit examples and the coverage cases come on
# top. A deeper local run: TBLEDGER_FUZZ_EXAMPLES=500, and TBLEDGER_FUZZ_SEED=<n> for other
# cases than the derandomized (reproducible) default.
FUZZ_EXAMPLES = int(os.environ.get("TBLEDGER_FUZZ_EXAMPLES", "60"))
FUZZ_SEED = os.environ.get("TBLEDGER_FUZZ_SEED")
SEND_TIMEOUT_S = 60.0

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# FastAPI reads these spellings of a boolean query parameter as true.
_TRUE = frozenset({"1", "true", "on", "yes", "t", "y"})


@dataclass
class Seeded:
    """Real ids and names, so a share of the generated requests reaches real records."""

    usd: list[str]
    eur: list[str]
    expendable: list[str]  # fair game for freeze / unfreeze / close
    transfers: list[str]
    owners: list[str]
    events: list[str]

    @property
    def accounts(self) -> list[str]:
        return [*self.usd, *self.eur]


@dataclass
class Tally:
    requests: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    by_operation: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    failures: list[str] = field(default_factory=list)


async def _seed(api: Api) -> Seeded:
    usd = [await api.account("alice"), await api.account("alice"), await api.account("bob")]
    eur = [await api.account("bob", ledger="EUR"), await api.account("dave", ledger="EUR")]
    expendable = [await api.account("carol") for _ in range(3)]
    for account in (*usd, *expendable):
        await api.deposit(account, "1000.00")
    for account in eur:
        await api.deposit(account, "500.00", ledger="EUR")
    transfers = []
    for index in range(10):
        r = await api.http.post(
            "/v1/transfers/pending" if index < 8 else "/v1/transfers",
            json={
                "debit_account_id": usd[index % 2],
                "credit_account_id": usd[2],
                "amount": f"{index + 1}.25",
                "ledger": "USD",
                "event_id": f"evt-{index % 2}",
            },
            headers=api.admin,
        )
        assert r.status_code == 201, r.text
        transfers.append(str(r.json()["id"]))
    return Seeded(
        usd=usd,
        eur=eur,
        expendable=expendable,
        transfers=transfers,
        owners=["alice", "bob", "carol", "dave"],
        events=["evt-0", "evt-1"],
    )


def _realistic(seeded: Seeded) -> Callable[[Any, Any], st.SearchStrategy[Any]]:
    """A `flatmap_case` hook: two thirds of the positive cases get real ids, owners, ledgers
    and amounts in place of generated ones (still valid for the schema), so requests get past
    the 404s and reach the engine."""

    def real_transfer(draw: st.DrawFn) -> dict[str, Any]:
        ledger = draw(st.sampled_from(["USD", "USD", "1", "EUR"]))
        pool = seeded.eur if ledger == "EUR" else [*seeded.usd, *seeded.expendable]
        debit, credit = draw(st.permutations(pool))[:2]
        return {
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": draw(st.sampled_from(["0.01", "1", "2.50", "5000"])),
            "ledger": ledger,
            "code": draw(st.sampled_from(["PAYMENT", "3", "REFUND"])),
            "event_id": draw(st.sampled_from(seeded.events)),
        }

    @st.composite
    def variant(draw: st.DrawFn, case: Any) -> Any:
        meta = case.meta
        if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
            return case
        if draw(st.integers(0, 2)) == 0:
            return case  # a third keep what was generated
        path = case.path
        if "account_id" in case.path_parameters:
            pool = seeded.expendable if path.endswith(("freeze", "close")) else seeded.accounts
            case.path_parameters = {
                **case.path_parameters,
                "account_id": draw(st.sampled_from(pool)),
            }
        if "transfer_id" in case.path_parameters:
            case.path_parameters = {
                **case.path_parameters,
                "transfer_id": draw(st.sampled_from(seeded.transfers)),
            }
        query = dict(case.query or {})
        if "owner_id" in query:
            query["owner_id"] = draw(st.sampled_from(seeded.owners))
        if "event_id" in query:
            query["event_id"] = draw(st.sampled_from(seeded.events))
        if "account_id" in query:
            query["account_id"] = draw(st.lists(st.sampled_from(seeded.accounts), min_size=1))
        if query:
            case.query = query
        body = case.body
        if isinstance(body, dict):
            body = dict(body)
            if "debit_account_id" in body:
                body = real_transfer(draw)
            if "transfers" in body and isinstance(body["transfers"], list):
                count = draw(st.integers(1, 4))
                body["transfers"] = [real_transfer(draw) for _ in range(count)]
            if "account_id" in body:
                body["account_id"] = draw(st.sampled_from(seeded.usd))
                body["ledger"] = "USD"
                body.pop("amount_unit", None)
                body["amount"] = draw(st.sampled_from(["0.01", "1", "2.50"]))
            if "sweep_to" in body:
                body["sweep_to"] = draw(st.sampled_from(seeded.usd))
            if path == "/v1/accounts" and "ledger" in body:
                body["ledger"] = draw(st.sampled_from(["USD", "EUR", "BTC", "2"]))
            if "amount" in body and path.endswith("/post"):
                body.pop("amount_unit", None)
                body["amount"] = draw(st.sampled_from(["0.01", "1", "1.25"]))
            case.body = body
        return case

    def flatmap_case(context: Any, case: Any) -> st.SearchStrategy[Any]:
        return variant(case)

    return flatmap_case


def _finite_events(case: Any) -> None:
    """`/v1/events` streams forever with follow=true (tested elsewhere): a case that would
    follow gets follow=false; invalid spellings are left alone (they are refused with 422)."""
    if case.path != "/v1/events":
        return
    query = dict(case.query or {})
    follow = query.get("follow")
    if isinstance(follow, list):
        follow = follow[-1] if follow else None
    if follow is None or follow is True or str(follow).lower() in _TRUE:
        query["follow"] = "false"
        case.query = query


def _header_bytes(value: Any) -> bytes:
    text = str(value)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _httpx_kwargs(serialized: dict[str, Any]) -> dict[str, Any]:
    """A requests-style request (what schemathesis serializes) as `httpx` arguments."""
    kwargs: dict[str, Any] = {
        "method": serialized["method"],
        "url": serialized["url"],
        "params": serialized.get("params") or None,
        "headers": [(str(k), _header_bytes(v)) for k, v in serialized["headers"].items()],
    }
    if serialized.get("cookies"):
        kwargs["cookies"] = serialized["cookies"]
    if "json" in serialized:
        # httpx sends no body at all for json=None; a generated JSON null is sent as such.
        if serialized["json"] is None:
            kwargs["content"] = b"null"
        else:
            kwargs["json"] = serialized["json"]
    elif isinstance(serialized.get("data"), bytes | str):
        kwargs["content"] = serialized["data"]
    elif serialized.get("data") is not None:
        kwargs["data"] = serialized["data"]
    return kwargs


@pytest.mark.slow
async def test_generated_requests_get_documented_answers(api: Api) -> None:
    seeded = await _seed(api)
    # Keys with room for the whole run: rate limiting is tested elsewhere.
    admin = mint_key(name="fuzz admin", scope="admin", rate_per_s=1_000_000, burst=1_000_000)
    await api.store.create_api_key(admin.record)
    admin_headers = {"Authorization": f"Bearer {admin.token}"}
    owner_headers = await api.owner("alice", rate_per_s=1_000_000, burst=1_000_000)

    schema = schemathesis.openapi.from_dict(api.app.openapi())
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=FUZZ_EXAMPLES,
        deterministic=True,
        database="none",
        # The keys are ours to choose (below): generated ones would all be refused with 401.
        with_security_parameters=False,
    )
    schema.hook(_realistic(seeded))

    loop = asyncio.get_running_loop()
    tally = Tally()

    def send(case: Any) -> None:
        _finite_events(case)
        # Mostly the admin key; every fifth request with an owner key (another owner's records
        # must read as missing) and every 23rd with a key that is not one.
        turn = tally.requests
        headers = owner_headers if turn % 5 == 4 else admin_headers
        if turn % 23 == 22:
            headers = {"X-API-Key": f"tbl_{turn:016x}_{'x' * 43}"}
        serialized = case.as_transport_kwargs(base_url="http://api", headers=headers)
        try:
            request = api.http.build_request(**_httpx_kwargs(serialized))
        except httpx.InvalidURL:
            return  # past the client's URL length limit (65,536): no HTTP client can send it
        future = asyncio.run_coroutine_threadsafe(api.http.send(request), loop)
        response: httpx.Response = future.result(timeout=SEND_TIMEOUT_S)
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        tally.by_operation[case.operation.label][response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=serialized["headers"])

    def run_all() -> None:
        for result in schema.get_all_operations():
            operation = result.ok()
            settings = hypothesis.settings(
                schema.config.get_hypothesis_settings(operation=operation, phase="fuzzing"),
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                derandomize=FUZZ_SEED is None,
                database=None,
                suppress_health_check=list(HealthCheck),
                verbosity=hypothesis.Verbosity.quiet,
            )
            test = create_test(
                operation=operation,
                test_func=send,
                config=HypothesisTestConfig(
                    project=schema.config,
                    modes=[
                        HypothesisTestMode.EXAMPLES,
                        HypothesisTestMode.COVERAGE,
                        HypothesisTestMode.FUZZING,
                    ],
                    settings=settings,
                ),
            )
            if FUZZ_SEED is not None:
                test = hypothesis.seed(int(FUZZ_SEED))(test)
            try:
                test()
            except FailureGroup as exc:  # the checks' report, with a curl command
                tally.failures.append(f"{operation.label}: {exc}")
            except Exception as exc:
                detail = "".join(traceback.format_exception(exc))
                tally.failures.append(f"{operation.label}:\n{detail}")

    started = time.monotonic()
    await asyncio.to_thread(run_all)
    elapsed = time.monotonic() - started

    print(f"\n{tally.requests} requests in {elapsed:.1f}s")
    print("statuses:", dict(sorted(tally.statuses.items())))
    for label, statuses in sorted(tally.by_operation.items()):
        print(f"  {statuses.total():4d}  {label}  {dict(sorted(statuses.items()))}")
    assert not tally.failures, "\n\n".join(tally.failures)
    assert tally.requests >= REQUESTS_MIN
    assert not [s for s in tally.statuses if s >= 500]
