"""Bad input, table-driven: every case gets its 4xx, never a 5xx, and nothing reaches the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.api import Api, transfer_body

U128_MAX = (1 << 128) - 1
BODY_MAX = 4 * 1024 * 1024


@dataclass
class Case:
    """One request and the statuses it may get (`statuses`), all 4xx."""

    name: str
    method: str
    path: str
    statuses: tuple[int, ...]
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] | list[tuple[str, str]] | None = None


@dataclass
class Accounts:
    alice: str
    bob: str
    euro: str


def _transfer(accounts: Accounts, **changes: Any) -> dict[str, Any]:
    return transfer_body(accounts.alice, accounts.bob, **changes)


def _raw(text: str) -> bytes:
    return text.encode()


def _cases(a: Accounts) -> list[Case]:
    transfer = json.dumps(_transfer(a))
    deep = "[" * 100_000 + "]" * 100_000
    batch_over = {"transfers": [_transfer(a)] * 8190}
    return [
        # -- amounts --------------------------------------------------------------------------
        Case("amount negative", "POST", "/v1/transfers", (422,), _transfer(a, amount="-1")),
        Case("reserved control code", "POST", "/v1/transfers", (422,), _transfer(a, code="65535")),
        Case("amount zero", "POST", "/v1/transfers", (422,), _transfer(a, amount="0")),
        Case("amount zero minor", "POST", "/v1/transfers", (422,),
             _transfer(a, amount="0", amount_unit="minor")),
        Case("amount beyond scale", "POST", "/v1/transfers", (422,), _transfer(a, amount="1.001")),
        Case("amount 1e400 string", "POST", "/v1/transfers", (422,), _transfer(a, amount="1e400")),
        Case("amount 1e400 number", "POST", "/v1/transfers", (400,),
             content=_raw(transfer.replace('"1.00"', "1e400"))),
        Case("amount NaN string", "POST", "/v1/transfers", (422,), _transfer(a, amount="NaN")),
        Case("amount NaN literal", "POST", "/v1/transfers", (400,),
             content=_raw(transfer.replace('"1.00"', "NaN"))),
        Case("amount Infinity literal", "POST", "/v1/transfers", (400,),
             content=_raw(transfer.replace('"1.00"', "-Infinity"))),
        Case("amount true", "POST", "/v1/transfers", (422,), _transfer(a, amount=True)),
        Case("amount 12.5 number", "POST", "/v1/transfers", (422,), _transfer(a, amount=12.5)),
        Case("amount integer number", "POST", "/v1/transfers", (422,), _transfer(a, amount=12)),
        Case("amount 2^128 minor", "POST", "/v1/transfers", (422,),
             _transfer(a, amount=str(1 << 128), amount_unit="minor")),
        Case("amount 2^128 major", "POST", "/v1/transfers", (422,),
             _transfer(a, amount=str(1 << 128))),
        Case("amount fractional minor", "POST", "/v1/transfers", (422,),
             _transfer(a, amount="1.5", amount_unit="minor")),
        Case("amount unit unknown", "POST", "/v1/transfers", (422,),
             _transfer(a, amount_unit="cents")),
        Case("amount with spaces", "POST", "/v1/transfers", (422,), _transfer(a, amount=" 1.00")),
        Case("amount 10^4300 digits", "POST", "/v1/transfers", (400, 422),
             content=_raw(transfer.replace('"1.00"', "9" * 5000))),
        # -- ids ------------------------------------------------------------------------------
        Case("account id 0 (path)", "GET", "/v1/accounts/0x0", (422,)),
        Case("account id 2^128-1 (path)", "GET", f"/v1/accounts/0x{U128_MAX:x}", (422,)),
        Case("account id 2^128 (path)", "GET", f"/v1/accounts/0x1{'0' * 32}", (422,)),
        Case("account id not an id (path)", "GET", "/v1/accounts/alice", (422,)),
        Case("balance id 0", "GET", "/v1/balances/0", (422,)),
        Case("balances id 2^128-1", "GET", "/v1/balances", (422,),
             params=[("account_id", a.alice), ("account_id", f"0x{U128_MAX:x}")]),
        Case("debit id 0", "POST", "/v1/transfers", (422,), _transfer(a, debit_account_id="0x0")),
        Case("credit id 2^128-1", "POST", "/v1/transfers", (422,),
             _transfer(a, credit_account_id=f"0x{U128_MAX:x}")),
        Case("debit id 2^128-1 decimal", "POST", "/v1/transfers", (422,),
             _transfer(a, debit_account_id=str(U128_MAX))),
        Case("debit id as JSON number", "POST", "/v1/transfers", (422,),
             _transfer(a, debit_account_id=int(a.alice, 16))),
        Case("debit id negative", "POST", "/v1/transfers", (422,),
             _transfer(a, debit_account_id="-1")),
        Case("transfer id 33 hex digits", "POST", "/v1/transfers", (422,),
             _transfer(a, transfer_id="0x" + "1" * 33)),
        Case("account transfers of id 0", "GET", "/v1/accounts/0x0/transfers", (422,)),
        Case("sweep_to id 0", "POST", f"/v1/accounts/{a.bob}/close", (422,),
             {"sweep_to": "0x0"}),
        # -- accounts and ledgers ------------------------------------------------------------
        Case("same debit and credit", "POST", "/v1/transfers", (422,),
             _transfer(a, credit_account_id=a.alice)),
        Case("ledger mismatch", "POST", "/v1/transfers", (422,),
             _transfer(a, credit_account_id=a.euro)),
        Case("ledger mismatch (pending)", "POST", "/v1/transfers/pending", (422,),
             _transfer(a, debit_account_id=a.euro)),
        Case("ledger unknown", "POST", "/v1/transfers", (422,), _transfer(a, ledger="XYZ")),
        Case("ledger zero", "POST", "/v1/accounts", (422,), {"ledger": "0", "owner_id": "z"}),
        Case("code unknown", "POST", "/v1/transfers", (422,), _transfer(a, code="NO_SUCH_CODE")),
        Case("code out of range", "POST", "/v1/transfers", (422,), _transfer(a, code="65536")),
        Case("unknown debit account", "POST", "/v1/transfers", (404,),
             _transfer(a, debit_account_id="0x7")),
        Case("unknown credit account", "POST", "/v1/transfers", (404,),
             _transfer(a, credit_account_id="0x7")),
        Case("unknown account (get)", "GET", "/v1/accounts/0x7", (404,)),
        Case("unknown account (balances)", "GET", "/v1/balances", (404,),
             params=[("account_id", a.alice), ("account_id", "0x7")]),
        Case("unknown account type", "POST", "/v1/accounts", (422,),
             {"ledger": "USD", "account_type": "wallet"}),
        Case("unknown hold (post)", "POST", "/v1/transfers/0x7/post", (404,)),
        Case("unknown hold (void)", "POST", "/v1/transfers/0x7/void", (404,)),
        Case("unknown transfer", "GET", "/v1/transfers/0x7", (404,)),
        Case("timeout_s on a posted transfer", "POST", "/v1/transfers", (422,),
             _transfer(a, timeout_s=10)),
        Case("timeout_s negative", "POST", "/v1/transfers/pending", (422,),
             _transfer(a, timeout_s=-1)),
        Case("timeout_s past u32", "POST", "/v1/transfers/pending", (422,),
             _transfer(a, timeout_s=1 << 32)),
        Case("user_data_64 past u64", "POST", "/v1/transfers", (422,),
             _transfer(a, user_data_64=1 << 64)),
        Case("user_data_32 as string", "POST", "/v1/transfers", (422,),
             _transfer(a, user_data_32="1")),
        # -- JSON itself ----------------------------------------------------------------------
        Case("duplicate keys", "POST", "/v1/transfers", (400,),
             content=_raw(transfer[:-1] + ', "amount": "1000.00"}')),
        Case("duplicate keys nested", "POST", "/v1/transfers", (400,),
             content=_raw(transfer[:-1] + ', "metadata": {"a": 1, "a": 2}}')),
        Case("100,000-deep nesting", "POST", "/v1/transfers", (400,),
             content=_raw(transfer[:-1] + f', "metadata": {{"deep": {deep}}}}}')),
        Case("not JSON", "POST", "/v1/transfers", (400,), content=b"{not json"),
        Case("not UTF-8", "POST", "/v1/transfers", (400,), content=b'{"amount": "\xff"}'),
        Case("truncated JSON", "POST", "/v1/transfers", (400,), content=_raw(transfer[:-5])),
        Case("JSON array body", "POST", "/v1/transfers", (422,), [_transfer(a)]),
        Case("JSON string body", "POST", "/v1/transfers", (422,), "transfer"),
        Case("empty object", "POST", "/v1/transfers", (422,), {}),
        Case("no body", "POST", "/v1/transfers", (422,)),
        Case("text/plain body", "POST", "/v1/transfers", (415,), content=_raw(transfer),
             headers={"Content-Type": "text/plain"}),
        Case("form body", "POST", "/v1/accounts", (415,), content=b"ledger=USD",
             headers={"Content-Type": "application/x-www-form-urlencoded"}),
        # -- unknown and ill-typed fields -------------------------------------------------------
        Case("timestamp field", "POST", "/v1/transfers", (422,), _transfer(a, timestamp=1)),
        Case("flags field", "POST", "/v1/transfers", (422,), _transfer(a, flags=2)),
        Case("imported field", "POST", "/v1/transfers", (422,), _transfer(a, imported=True)),
        Case("flags on an account", "POST", "/v1/accounts", (422,),
             {"ledger": "USD", "owner_id": "z", "flags": 2}),
        Case("imported on a batch", "POST", "/v1/transfers/batch", (422,),
             {"transfers": [_transfer(a)], "imported": True}),
        Case("timestamp on a post", "POST", "/v1/transfers/0x7/post", (422,), {"timestamp": 1}),
        Case("metadata not an object", "POST", "/v1/transfers", (422,),
             _transfer(a, metadata=["a"])),
        Case("metadata over 4 KiB", "POST", "/v1/transfers", (413, 422),
             _transfer(a, metadata={"x": "y" * 5000})),
        Case("owner_id over 255 chars", "POST", "/v1/accounts", (422,),
             {"ledger": "USD", "owner_id": "o" * 256}),
        Case("event_id empty", "POST", "/v1/transfers", (422,), _transfer(a, event_id="")),
        # -- sizes ----------------------------------------------------------------------------
        Case("body over 4 MiB", "POST", "/v1/transfers", (413,),
             content=_raw(transfer[:-1] + f', "metadata": {{"x": "{"y" * BODY_MAX}"}}}}')),
        Case("batch over 8189", "POST", "/v1/transfers/batch", (413,), batch_over),
        Case("empty batch", "POST", "/v1/transfers/batch", (422,), {"transfers": []}),
        # -- queries and headers ----------------------------------------------------------------
        Case("limit over 1000 (accounts)", "GET", "/v1/accounts", (422,),
             params={"owner_id": "alice", "limit": 1001}),
        Case("limit over 1000 (events)", "GET", "/v1/transfers", (422,),
             params={"event_id": "e", "limit": 1001}),
        Case("limit over 1000 (account transfers)", "GET", f"/v1/accounts/{a.alice}/transfers",
             (422,), params={"limit": 1001}),
        Case("limit zero", "GET", f"/v1/accounts/{a.alice}/transfers", (422,),
             params={"limit": 0}),
        Case("limit not a number", "GET", "/v1/accounts", (422,),
             params={"owner_id": "alice", "limit": "ten"}),
        Case("cursor past u64", "GET", f"/v1/accounts/{a.alice}/transfers", (422,),
             params={"cursor": str(1 << 64)}),
        Case("cursor negative", "GET", f"/v1/accounts/{a.alice}/transfers", (422,),
             params={"cursor": "-1"}),
        Case("account status unknown", "GET", "/v1/accounts", (422,),
             params={"status": "sleeping"}),
        Case("account type unknown", "GET", "/v1/accounts", (422,),
             params={"account_type": "vault"}),
        Case("ledger unknown (accounts)", "GET", "/v1/accounts", (422,),
             params={"ledger": "XYZ"}),
        Case("transfers with no filter", "GET", "/v1/transfers", (422,)),
        Case("metadata filter without a key", "GET", "/v1/transfers", (422,),
             params={"metadata": "order:A-17"}),
        Case("metadata filter with an empty key", "GET", "/v1/transfers", (422,),
             params={"metadata[]": "x"}),
        Case("metadata filters over 8", "GET", "/v1/transfers", (422,),
             params={f"metadata[k{n}]": "v" for n in range(9)}),
        Case("metadata value over 255 chars", "GET", "/v1/transfers", (422,),
             params={"metadata[k]": "v" * 256}),
        Case("account name over 255 chars", "GET", "/v1/accounts/by-name/" + "n" * 256, (422,)),
        Case("balances without ids", "GET", "/v1/balances", (422,)),
        Case("idempotency key with spaces", "POST", "/v1/transfers", (422,), _transfer(a),
             headers={"Idempotency-Key": "a b"}),
        Case("idempotency key too long", "POST", "/v1/transfers", (422,), _transfer(a),
             headers={"Idempotency-Key": "k" * 201}),
        Case("events since negative", "GET", "/v1/events", (422,),
             params={"since": -1, "follow": "false"}),
        Case("events Last-Event-ID not a number", "GET", "/v1/events", (422,),
             params={"follow": "false"}, headers={"Last-Event-ID": "x"}),
    ]  # fmt: skip


async def _accounts(api: Api) -> Accounts:
    alice = await api.account("alice")
    bob = await api.account("bob")
    euro = await api.account("bob", ledger="EUR")
    await api.deposit(alice, "100.00")
    return Accounts(alice, bob, euro)


async def test_bad_input_is_refused_before_the_engine(api: Api) -> None:
    accounts = await _accounts(api)
    failures = []
    for case in _cases(accounts):
        before = api.engine_requests()
        headers = {**api.admin, **case.headers}
        if case.content is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        r = await api.http.request(
            case.method,
            case.path,
            json=case.json,
            content=case.content,
            headers=headers,
            params=case.params,
        )
        after = api.engine_requests()
        if r.status_code not in case.statuses or after != before:
            failures.append(
                f"{case.name}: {r.status_code} (want {case.statuses}), "
                f"engine requests {before} -> {after}: {r.text[:200]}"
            )
        elif r.headers.get("content-type", "").startswith("application/json"):
            error = r.json()["error"]
            assert error["code"] and error["message"], case.name
    assert not failures, "\n".join(failures)
    # Nothing moved: the balances are what the deposit left.
    r = await api.http.get(
        "/v1/balances",
        params=[("account_id", accounts.alice), ("account_id", accounts.bob)],
        headers=api.admin,
    )
    assert [b["posted"] for b in r.json()["balances"]] == ["100.00", "0.00"]


async def test_sql_injection_in_filters_is_just_text(api: Api) -> None:
    sneaky = "x' OR '1'='1"
    await api.account("alice")
    await api.account("bob")
    r = await api.http.get("/v1/accounts", params={"owner_id": sneaky}, headers=api.admin)
    assert r.status_code == 200
    assert r.json()["accounts"] == []
    for other in ("' OR 1=1 --", "alice'; DROP TABLE accounts; --", "%", "_", "alice%"):
        r = await api.http.get("/v1/accounts", params={"owner_id": other}, headers=api.admin)
        assert r.json()["accounts"] == [], other
    r = await api.http.get("/v1/transfers", params={"event_id": sneaky}, headers=api.admin)
    assert r.json()["transfers"] == []
    # Stored verbatim, read back exactly, and only that row matches.
    account = await api.account(sneaky)
    r = await api.http.get("/v1/accounts", params={"owner_id": sneaky}, headers=api.admin)
    (only,) = r.json()["accounts"]
    assert (only["id"], only["owner_id"]) == (account, sneaky)
    r = await api.http.get(f"/v1/accounts/{account}", headers=api.admin)
    assert r.json()["owner_id"] == sneaky
    # An owner key bound to that odd id sees exactly its own account.
    r = await api.http.get(
        "/v1/accounts", params={"owner_id": sneaky}, headers=await api.owner(sneaky)
    )
    assert [x["id"] for x in r.json()["accounts"]] == [account]


async def test_control_characters_and_lone_surrogates(api: Api) -> None:
    """NUL and lone surrogates cannot be stored (PostgreSQL text and jsonb hold neither): they
    are refused (NUL with 422, an unpaired surrogate escape as malformed JSON, 400) before the
    engine; other control characters are stored verbatim."""
    alice = await api.account("alice")
    bob = await api.account("bob")
    await api.deposit(alice, "10.00")
    transfer = {"debit_account_id": alice, "credit_account_id": bob, "amount": "1.00"}
    refused = [
        ("/v1/transfers", {**transfer, "ledger": "USD", "metadata": {"note": "a\u0000b"}}),
        ("/v1/transfers", {**transfer, "ledger": "USD", "metadata": {"a\u0000": 1}}),
        ("/v1/transfers", {**transfer, "ledger": "USD", "metadata": {"n": ["\ud800"]}}),
        ("/v1/transfers", {**transfer, "ledger": "USD", "metadata": {"\udfff": 1}}),
        ("/v1/transfers", {**transfer, "ledger": "USD", "event_id": "e\u0000"}),
        ("/v1/transfers", {**transfer, "ledger": "USD", "payment_id": "p\ud800"}),
        ("/v1/accounts", {"ledger": "USD", "owner_id": "o\u0000"}),
        ("/v1/accounts", {"ledger": "USD", "owner_id": "\ud800"}),
        ("/v1/accounts", {"ledger": "USD", "owner_id": "z", "metadata": {"x": "\u0000"}}),
        ("/v1/accounts", {"ledger": "USD", "owner_id": "z", "name": "n\udbff"}),
    ]
    for path, body in refused:
        before = api.engine_requests()
        # json.dumps spells both as \u escapes, which is how a client would send them.
        r = await api.http.post(
            path,
            content=json.dumps(body).encode(),
            headers={**api.admin, "Content-Type": "application/json"},
        )
        assert r.status_code in (400, 422), (body, r.text)
        assert api.engine_requests() == before, body
    r = await api.http.get("/v1/accounts", params={"owner_id": "\u0000"}, headers=api.admin)
    assert r.status_code in (200, 422), r.text
    # A paired surrogate (an emoji), tabs and newlines are text: stored and read back exactly.
    odd = {"note": "tab\tnew\nline \U0001f600 \\u0000", "\u00e9": "\x1f"}
    r = await api.http.post(
        "/v1/transfers",
        json={**transfer, "ledger": "USD", "metadata": odd, "event_id": "evt-odd"},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    r = await api.http.get(f"/v1/transfers/{r.json()['id']}", headers=api.admin)
    assert r.json()["metadata"] == odd
