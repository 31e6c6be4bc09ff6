"""``tbledger db`` and ``tbledger keys``: the store's schema and API keys, no server needed.

These commands work where the service cannot help: before it runs (the first admin key, the
schema) and when it is down. They go through `tbledger.admin`, the library's facade for them,
never the store itself, so the store's tables stay behind one door; a library error (a schema
behind the packaged migrations, an unknown key) prints what to do and exits with status 1.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from tbledger.admin import ApiKeyInfo, create_key, list_keys, revoke_key
from tbledger.cli._options import (
    DEFAULT_DATA_DIR,
    DatabaseOpt,
    DataDirOpt,
    JsonFlag,
    database_url_of,
    existing_store_url,
)
from tbledger.cli._output import die, keys_table, output_of, run_or_exit, shown
from tbledger.errors import ValidationError

__all__ = ["db_app", "keys_app"]

db_app = typer.Typer(help="The store's database.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys, managed directly in the store (no server needed).", no_args_is_help=True
)


# -- db -------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Migrate the store's schema to the latest version (safe to repeat)."""
    from tbledger.admin import upgrade_database  # noqa: PLC0415

    out = output_of(ctx, json_output)
    url = database_url_of(database_url, data_dir)
    try:
        asyncio.run(upgrade_database(url))
    except Exception as exc:
        raise die(f"cannot upgrade {shown(url)}: {exc}") from None
    out.result(
        {"database_url": shown(url), "upgraded": True},
        lambda: Text(f"upgraded {shown(url)} to the latest schema"),
    )


# -- keys -----------------------------------------------------------------------------------------


def _key_json(record: ApiKeyInfo, token: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "scopes": list(record.scopes),
        "owner_id": record.owner_id,
        "rate_per_s": record.rate_per_s,
        "burst": record.burst,
        "created_at": None if record.created_at is None else record.created_at.isoformat(),
        "revoked_at": None if record.revoked_at is None else record.revoked_at.isoformat(),
        "active": record.revoked_at is None,
    }
    if token is not None:
        data["token"] = token
    return data


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the key is for (shown in lists).")],
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin key: may do everything.")
    ] = False,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="An owner key bound to this owner id.", show_default=False),
    ] = None,
    rate: Annotated[
        int | None, typer.Option(min=1, help="Requests a second.", show_default=False)
    ] = None,
    burst: Annotated[
        int | None, typer.Option(min=1, help="Requests saved up.", show_default=False)
    ] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Create an API key and print its token (once: only its hash is stored)."""
    from tbledger.admin import check_key  # noqa: PLC0415

    out = output_of(ctx, json_output)
    if admin == (owner is not None):
        raise typer.BadParameter("pass exactly one of --admin or --owner OWNER")
    try:
        check_key(name=name, admin=admin, owner_id=owner, rate_per_s=rate, burst=burst)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None
    url = existing_store_url(database_url, data_dir)
    record = run_or_exit(
        create_key(url, name=name, admin=admin, owner_id=owner, rate_per_s=rate, burst=burst)
    )
    token = record.token or ""
    data = _key_json(record, token)

    def render() -> RenderableType:
        return Group(
            keys_table([data], title="API key created"),
            Panel(
                Text(token, style="bold"),
                title="token: shown once, keep it secret",
                expand=False,
            ),
            Text(f"use it: export TBLEDGER_API_KEY={token}"),
        )

    out.result(data, render)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """List API keys (ids, names, scopes; never secrets)."""
    out = output_of(ctx, json_output)
    url = existing_store_url(database_url, data_dir)
    records = run_or_exit(list_keys(url))
    keys = [_key_json(r) for r in records]
    out.result({"keys": keys}, lambda: keys_table(keys))


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after tbl_).")],
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Revoke an API key (running services stop accepting it within seconds)."""
    out = output_of(ctx, json_output)
    url = existing_store_url(database_url, data_dir)
    record = run_or_exit(revoke_key(url, key_id))
    data = _key_json(record)
    out.result(data, lambda: keys_table([data], title="API key revoked"))
