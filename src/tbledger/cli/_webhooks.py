"""``tbledger webhooks``: webhook endpoints managed in the store, and the deliverer itself.

Like ``tbledger keys`` these work with no server running, through `tbledger.webhooks.manage`
(never the store itself): ``create`` registers an endpoint and shows its signing secret once,
``list``, ``delete``, ``rotate`` (a new secret; the old one signs too for a day), ``replay``
(send again from an audit seq), ``enable`` (after it was disabled by failures) and
``deliveries`` (the delivery log). ``run`` delivers until interrupted, reading the
``TBLEDGER_WEBHOOK_*`` settings; ``tbledger serve`` runs the same deliverer when
``TBLEDGER_WEBHOOKS=1``. Endpoints made here are admin-wide unless ``--owner`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from tbledger.cli._options import (
    DEFAULT_DATA_DIR,
    DatabaseOpt,
    DataDirOpt,
    JsonFlag,
    database_url_of,
)
from tbledger.cli._output import die, output_of, run_or_exit

__all__ = ["webhooks_app"]

_T = TypeVar("_T")

webhooks_app = typer.Typer(
    help="Webhook endpoints (managed in the store) and the deliverer.", no_args_is_help=True
)


def _in_store(url: str, work: Callable[[Any], Awaitable[_T]]) -> _T:
    from tbledger.webhooks.manage import in_store  # noqa: PLC0415 (client commands start fast)

    return run_or_exit(in_store(url, work))


def _table(endpoints: list[dict[str, Any]]) -> Table:
    table = Table("id", "url", "owner", "enabled", "cursor", "failures", "description")
    for e in endpoints:
        table.add_row(
            e["id"],
            e["url"],
            e["owner_id"] or "(admin)",
            "yes" if e["enabled"] else f"no: {e['disabled_reason']}",
            str(e["cursor"]),
            str(e["failure_count"]),
            e["description"],
        )
    return table


def _shown(ctx: typer.Context, json_output: bool, endpoint: dict[str, Any]) -> None:
    out = output_of(ctx, json_output)
    out.result(endpoint, lambda: _table([endpoint]))
    if "secret" in endpoint and not json_output:
        out.note(f"signing secret (shown once): {endpoint['secret']}")


@webhooks_app.command("create")
def create(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="http(s) URL the events are POSTed to")],
    owner: Annotated[str | None, typer.Option(help="only this owner's events")] = None,
    description: Annotated[str, typer.Option()] = "",
    kind: Annotated[list[str] | None, typer.Option(help="event kind (repeat); none: all")] = None,
    ledger: Annotated[list[int] | None, typer.Option(help="ledger (repeat); none: all")] = None,
    code: Annotated[list[int] | None, typer.Option(help="code (repeat); none: all")] = None,
    from_seq: Annotated[
        int | None,
        typer.Option("--from", min=1, help="start at this audit seq (default: from now on)"),
    ] = None,
    allowed_host: Annotated[
        list[str] | None, typer.Option(help="host allowlist to check the URL against (repeat)")
    ] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Register an endpoint; its signing secret is shown once."""
    from tbledger.webhooks.manage import create_endpoint, describe, subscription_of  # noqa: PLC0415

    try:
        subscription = subscription_of(kinds=kind or (), ledgers=ledger or (), codes=code or ())
    except ValueError as exc:
        raise die(str(exc), 2) from None

    async def work(store: Any) -> dict[str, Any]:
        endpoint = await create_endpoint(
            store,
            url=url,
            owner_id=owner,
            description=description,
            subscription=subscription,
            allowed_hosts=allowed_host or (),
            cursor=None if from_seq is None else from_seq - 1,
        )
        return describe(endpoint, with_secret=True)

    _shown(ctx, json_output, _in_store(database_url_of(database_url, data_dir), work))


@webhooks_app.command("list")
def list_(
    ctx: typer.Context,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Every endpoint, oldest first (secrets are never listed)."""
    from tbledger.webhooks.manage import describe  # noqa: PLC0415

    async def work(store: Any) -> list[dict[str, Any]]:
        return [describe(e) for e in await store.list_webhook_endpoints(every_owner=True)]

    found = _in_store(database_url_of(database_url, data_dir), work)
    output_of(ctx, json_output).result(found, lambda: _table(found))


def _one(
    ctx: typer.Context,
    json_output: bool,
    url: str,
    endpoint_id: str,
    change: Callable[[Any, Any], Awaitable[Any]],
    *,
    with_secret: bool = False,
) -> None:
    from tbledger.webhooks.manage import describe, found_endpoint  # noqa: PLC0415

    async def work(store: Any) -> dict[str, Any]:
        endpoint = await found_endpoint(store, endpoint_id, owner_id=None)
        return describe(await change(store, endpoint), with_secret=with_secret)

    _shown(ctx, json_output, _in_store(url, work))


EndpointArg = Annotated[str, typer.Argument(help="the endpoint's id (we_…)")]


@webhooks_app.command("delete")
def delete(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Remove an endpoint (its delivery log stays)."""
    from tbledger.webhooks.manage import delete_endpoint, found_endpoint  # noqa: PLC0415

    async def work(store: Any) -> None:
        await delete_endpoint(store, await found_endpoint(store, endpoint_id, owner_id=None))

    _in_store(database_url_of(database_url, data_dir), work)
    output_of(ctx, json_output).result(
        {"id": endpoint_id, "deleted": True}, lambda: Text(f"deleted {endpoint_id}")
    )


@webhooks_app.command("rotate")
def rotate(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """A new signing secret (shown once); the previous one also signs for a day."""
    from tbledger.webhooks.manage import rotate_secret  # noqa: PLC0415

    url = database_url_of(database_url, data_dir)
    _one(ctx, json_output, url, endpoint_id, rotate_secret, with_secret=True)


@webhooks_app.command("replay")
def replay(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    from_seq: Annotated[int, typer.Option("--from", min=1, help="the first audit seq to resend")],
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Send the endpoint every event from an audit seq on again."""
    from tbledger.webhooks.manage import replay_endpoint  # noqa: PLC0415

    async def change(store: Any, endpoint: Any) -> Any:
        return await replay_endpoint(store, endpoint, from_seq=from_seq)

    _one(ctx, json_output, database_url_of(database_url, data_dir), endpoint_id, change)


@webhooks_app.command("enable")
def enable(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Enable an endpoint disabled by failures; it resumes at its cursor."""
    from tbledger.webhooks.manage import enable_endpoint  # noqa: PLC0415

    url = database_url_of(database_url, data_dir)
    _one(ctx, json_output, url, endpoint_id, enable_endpoint)


@webhooks_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    endpoint_id: EndpointArg,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """An endpoint's latest delivery attempts, newest first."""
    from tbledger.webhooks.manage import describe_delivery, found_endpoint  # noqa: PLC0415

    async def work(store: Any) -> list[dict[str, Any]]:
        await found_endpoint(store, endpoint_id, owner_id=None)
        found = await store.webhook_deliveries(endpoint_id, limit=limit)
        return [describe_delivery(d) for d in found]

    found = _in_store(database_url_of(database_url, data_dir), work)

    def render() -> Table:
        table = Table("seq", "event", "attempt", "status", "ms", "error", "at")
        for d in found:
            table.add_row(
                str(d["seq"]),
                str(d["event_seq"]),
                str(d["attempt"]),
                str(d["status_code"] or ""),
                str(d["latency_ms"]),
                d["error"] or "",
                d["attempted_at"][:19],
            )
        return table

    output_of(ctx, json_output).result(found, render)


@webhooks_app.command("run")
def run(
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Deliver webhooks until interrupted (TBLEDGER_WEBHOOK_* settings apply)."""
    from tbledger.config import Settings  # noqa: PLC0415
    from tbledger.errors import ConfigurationError  # noqa: PLC0415
    from tbledger.webhooks.deliverer import run_deliverer  # noqa: PLC0415

    try:
        settings = Settings(database_url=database_url_of(database_url, data_dir))
    except ConfigurationError as exc:
        raise die(str(exc), 2) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await run_deliverer(settings, stop=stop)

    run_or_exit(main())
