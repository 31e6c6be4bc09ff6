"""Discovery reads on both stores: accounts by their columns, transfers by their metadata.

`Store.accounts_page` lists accounts by type, ledger, status and owner (the platform's own,
which have no owner, among them) in id order, a page at a time; `transfers_by_metadata_page`
finds transfers whose metadata holds key/value pairs, string values exactly, on SQLite and on
PostgreSQL alike, narrowed to an owner or an event in the query. On PostgreSQL the lookup is
answered by the GIN index of revision 0009, which the plan shows.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tbledger.errors import LimitExceededError, ValidationError
from tbledger.ids import new_id
from tbledger.limits import METADATA_FILTER_PAIRS_MAX, STORE_PAGE_ROWS_MAX
from tbledger.store import AccountStatus, Store, TransferIntent
from tests.store.conftest import StoreCase
from tests.store.test_store import account, intent

# -- accounts -------------------------------------------------------------------------------------


async def _accounts(store: Store) -> dict[str, int]:
    """A small chart of accounts: two owners' wallets on two ledgers, a merchant, and the
    platform's own treasury and fee pool (no owner), by a short name."""
    rows = {
        "alice_usd": account(owner_id="alice", ledger=1),
        "alice_eur": account(owner_id="alice", ledger=2),
        "bob_shop": account(owner_id="bob", ledger=1, account_type="merchant", code=2),
        "treasury": account(ledger=1, account_type="treasury", code=3, name="system:treasury:1"),
        "fees": account(ledger=1, account_type="fee_pool", code=5, name="system:fee_pool:1"),
        "treasury_eur": account(
            ledger=2, account_type="treasury", code=3, name="system:treasury:2"
        ),
    }
    await store.create_accounts(rows.values())
    return {name: record.id for name, record in rows.items()}


async def _ids(store: Store, limit: int = 100, **filters: Any) -> list[int]:
    return [a.id for a in await store.accounts_page(limit, **filters)]


async def test_accounts_are_listed_by_each_column_in_id_order(store: Store) -> None:
    ids = await _accounts(store)
    assert await _ids(store) == sorted(ids.values())
    assert await _ids(store, account_type="treasury") == sorted(
        [ids["treasury"], ids["treasury_eur"]]
    )
    assert await _ids(store, account_type="treasury", ledger=2) == [ids["treasury_eur"]]
    assert await _ids(store, ledger=1, owner_id="alice") == [ids["alice_usd"]]
    assert await _ids(store, owner_id="bob") == [ids["bob_shop"]]
    assert await _ids(store, owner_id="carol") == []
    assert await _ids(store, status="active") == sorted(ids.values())
    assert await _ids(store, status=AccountStatus.FROZEN) == []


async def test_accounts_by_status_follow_their_changes(store: Store) -> None:
    ids = await _accounts(store)
    await store.update_account_status(ids["bob_shop"], AccountStatus.FROZEN, new_id())
    assert await _ids(store, status="frozen") == [ids["bob_shop"]]
    assert ids["bob_shop"] not in await _ids(store, status="active")


async def test_accounts_page_after_the_last_id_of_the_previous_page(store: Store) -> None:
    ids = sorted((await _accounts(store)).values())
    pages = []
    after = None
    while True:
        page = await _ids(store, 4, after_id=after)
        if not page:
            break
        pages.append(page)
        after = page[-1]
    assert pages == [ids[:4], ids[4:]]


async def test_accounts_page_bounds_and_checks(store: Store) -> None:
    with pytest.raises(LimitExceededError):
        await store.accounts_page(STORE_PAGE_ROWS_MAX + 1)
    with pytest.raises(ValidationError):
        await store.accounts_page(0)
    with pytest.raises(ValidationError, match="unknown account status"):
        await store.accounts_page(10, status="sleeping")


# -- transfers by metadata ------------------------------------------------------------------------


async def _intents(store: Store, *rows: TransferIntent) -> list[int]:
    await store.insert_intents(list(rows), returning=False)
    return [row.id for row in rows]


async def _found(store: Store, pairs: dict[str, str], limit: int = 100, **kw: Any) -> list[int]:
    return [i.id for i in await store.transfers_by_metadata_page(pairs, limit, **kw)]


async def test_transfers_are_found_by_string_metadata_values_exactly(store: Store) -> None:
    a17, a17b, a18, number, nested, listed = await _intents(
        store,
        intent(metadata={"order": "A-17", "shop": "north"}),
        intent(metadata={"order": "A-17", "shop": "south"}),
        intent(metadata={"order": "A-18"}),
        intent(metadata={"order": 17}),
        intent(metadata={"inner": {"order": "A-17"}}),
        intent(metadata={"order": ["A-17"]}),
    )
    assert await _found(store, {"order": "A-17"}) == [a17, a17b]
    assert await _found(store, {"order": "A-17", "shop": "south"}) == [a17b]
    assert await _found(store, {"order": "A-18"}) == [a18]
    # Strings only: neither the number 17, a nested document nor a list is a match.
    assert await _found(store, {"order": "17"}) == []
    assert await _found(store, {"order": "A-1"}) == []
    assert await _found(store, {"ORDER": "A-17"}) == []
    assert number and nested and listed


async def test_any_key_can_be_matched(store: Store) -> None:
    odd = {'say "hi"': "x", "a.b": "y", "$[0]": "z", "ключ": "значение", "": "empty key"}
    (found,) = await _intents(store, intent(metadata=odd))
    await _intents(store, intent(metadata={"a": {"b": "y"}}))
    for key in ('say "hi"', "a.b", "$[0]", "ключ"):
        assert await _found(store, {key: odd[key]}) == [found], key
    with pytest.raises(ValidationError, match="1 to 255"):
        await _found(store, {"": "empty key"})


async def test_transfers_by_metadata_narrow_to_an_owner_and_an_event(store: Store) -> None:
    alice, bob, shop = account(owner_id="alice"), account(owner_id="bob"), account()
    await store.create_accounts([alice, bob, shop])
    tag = {"campaign": "spring"}
    mine_out, mine_in, bobs, evented = await _intents(
        store,
        intent(debit_account_id=alice.id, credit_account_id=shop.id, metadata=tag),
        intent(debit_account_id=bob.id, credit_account_id=alice.id, metadata=tag),
        intent(debit_account_id=bob.id, credit_account_id=shop.id, metadata=tag),
        intent(debit_account_id=bob.id, credit_account_id=shop.id, metadata=tag, event_id="e-1"),
    )
    assert await _found(store, tag, owner_id="alice") == [mine_out, mine_in]
    assert await _found(store, tag, owner_id="bob") == [mine_in, bobs, evented]
    assert await _found(store, tag, owner_id="carol") == []
    assert await _found(store, tag, event_id="e-1") == [evented]
    assert await _found(store, tag, event_id="e-1", owner_id="alice") == []
    assert await _found(store, tag) == [mine_out, mine_in, bobs, evented]


async def test_transfers_by_metadata_page_after_the_last_id(store: Store) -> None:
    tag = {"batch": "b-1"}
    ids = await _intents(store, *(intent(metadata=tag) for _ in range(5)))
    await _intents(store, intent(metadata={"batch": "b-2"}))
    assert await _found(store, tag, 2) == ids[:2]
    assert await _found(store, tag, 2, after_id=ids[1]) == ids[2:4]
    assert await _found(store, tag, 2, after_id=ids[3]) == ids[4:]
    assert await _found(store, tag, 2, after_id=ids[4]) == []


async def test_transfers_by_metadata_bounds_and_checks(store: Store) -> None:
    many = {f"k{n}": "v" for n in range(METADATA_FILTER_PAIRS_MAX + 1)}
    with pytest.raises(LimitExceededError, match="metadata pairs"):
        await _found(store, many)
    with pytest.raises(ValidationError, match="at least one"):
        await _found(store, {})
    with pytest.raises(ValidationError, match="NUL"):
        await _found(store, {"k": "a\x00b"})
    with pytest.raises(ValidationError, match="strings"):
        await _found(store, {"k": 17})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="at most 255"):
        await _found(store, {"k": "v" * 256})
    with pytest.raises(LimitExceededError):
        await _found(store, {"k": "v"}, STORE_PAGE_ROWS_MAX + 1)
    assert await _found(store, {k: "v" for k in list(many)[:METADATA_FILTER_PAIRS_MAX]}) == []


# -- PostgreSQL: the GIN index --------------------------------------------------------------------


async def _plan_of_the_lookup(case: StoreCase, pairs: dict[str, str]) -> tuple[list[int], str]:
    """What the store answers for `pairs`, and the plan PostgreSQL makes for its very query."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM transfers" in statement:
            seen.append((statement, params))

    sync_engine = case.store.engine.sync_engine
    sa.event.listen(sync_engine, "before_cursor_execute", capture)
    try:
        found = await _found(case.store, pairs, 10)
    finally:
        sa.event.remove(sync_engine, "before_cursor_execute", capture)
    ((statement, params),) = seen
    async with case.admin.connect() as conn:
        plan = (await conn.exec_driver_sql(f"EXPLAIN {statement}", params)).scalars().all()
    return found, "\n".join(plan)


async def test_the_gin_index_is_there_and_answers_metadata_lookups(
    postgres_case: StoreCase,
) -> None:
    async with postgres_case.admin.connect() as conn:
        definition = (
            await conn.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = :schema "
                    "AND indexname = 'ix_transfers_metadata'"
                ),
                {"schema": postgres_case.schema},
            )
        ).scalar_one()
    assert "USING gin (metadata jsonb_path_ops)" in definition
    store = postgres_case.store
    rows = [intent(metadata={"order": f"order-{n}", "shop": f"shop-{n % 7}"}) for n in range(4000)]
    await store.insert_intents(rows, returning=False)
    async with postgres_case.admin.begin() as conn:
        await conn.execute(sa.text("ANALYZE transfers"))
    found, plan = await _plan_of_the_lookup(postgres_case, {"order": "order-1234"})
    assert found == [rows[1234].id]
    assert "ix_transfers_metadata" in plan, plan
    assert "Seq Scan" not in plan, plan
