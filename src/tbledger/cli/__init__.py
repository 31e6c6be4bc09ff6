"""The ``tbledger`` command line (Typer + Rich).

Three kinds of command:

* ``serve`` runs the HTTP API (uvicorn) on the embedded engine and SQLite by default, with the
  data under ``./.tbledger``; ``TBLEDGER_ENGINE_URL`` / ``TIGERBEETLE_ADDRESSES`` and
  ``TBLEDGER_DATABASE_URL`` (or the options) point it at a TigerBeetle cluster and PostgreSQL.
* ``db upgrade`` and ``keys create|list|revoke`` work on the store directly, no server needed.
* ``accounts``, ``balance``, ``transfer``, ``hold``, ``post``, ``void``, ``audit``, ``recover``,
  ``rates`` (the operator's exchange rates) and ``fees`` (merchants' fee schedules) talk to a
  running service over HTTP (``--url`` / ``TBLEDGER_API_URL``, ``--api-key`` /
  ``TBLEDGER_API_KEY``).

Output is a Rich table by default and JSON with ``--json`` (before or after the command name);
errors go to stderr (in JSON mode, an error object on stdout) with a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tbledger.admin import ApiKeyInfo, create_key, list_keys, revoke_key
from tbledger.client import LedgerClient, TransferSpec, answer_of
from tbledger.errors import HttpApiError, TbledgerError, ValidationError
from tbledger.limits import (
    CLIENT_TIMEOUT_S,
    HTTP_BODY_IDLE_TIMEOUT_S,
    HTTP_HEADER_TIMEOUT_S,
    HTTP_KEEP_ALIVE_TIMEOUT_S,
)

__all__ = ["app", "main"]

log = logging.getLogger("tbledger.cli")

_T = TypeVar("_T")

DEFAULT_DATA_DIR = Path(".tbledger")
ENGINE_FILE = "engine.tbj"
DATABASE_FILE = "tbledger.db"
DEFAULT_API_URL = "http://127.0.0.1:8000"
HTTP_TIMEOUT_S = CLIENT_TIMEOUT_S
OUTPUT_WIDTH_PIPED = 200
_AMOUNT = re.compile(r"[0-9]{1,39}(\.[0-9]{1,38})?")

app = typer.Typer(
    name="tbledger",
    help="A ledger service on TigerBeetle: run the API, manage keys, move money.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="The store's database.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys, managed directly in the store (no server needed).", no_args_is_help=True
)
accounts_app = typer.Typer(help="Accounts, through a running service.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
rates_app = typer.Typer(
    help="The operator's exchange rates, through a running service.", no_args_is_help=True
)
fees_app = typer.Typer(
    help="Merchants' fee schedules, through a running service.", no_args_is_help=True
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(rates_app, name="rates")
app.add_typer(fees_app, name="fees")


# -- output ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """Where results go: Rich tables on stdout, or JSON for scripts; notes and errors on stderr."""

    json: bool

    @property
    def out(self) -> Console:
        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            # Piped or captured: tables keep their full width instead of wrapping at 80 columns.
            console = Console(highlight=False, width=OUTPUT_WIDTH_PIPED)
        return console

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)

    def result(self, data: Any, render: Callable[[], RenderableType]) -> None:
        if self.json:
            typer.echo(json.dumps(data, indent=2))
        else:
            self.out.print(render())

    def note(self, text: str) -> None:
        """A line for people (suppressed in JSON mode, which prints only the result)."""
        if not self.json:
            self.err.print(text)

    def fail(self, failure: HttpApiError) -> None:
        if self.json:
            body: dict[str, Any] = {
                "error": {
                    "code": failure.code,
                    "message": failure.message,
                    "details": _jsonable(failure.details),
                },
                "status": failure.status,
            }
            typer.echo(json.dumps(body, indent=2))
            return
        where = f"HTTP {failure.status} " if failure.status is not None else ""
        self.err.print(
            Text.assemble(("error: ", "bold red"), f"{where}{failure.code}: {failure.message}")
        )
        for key, value in _jsonable(failure.details).items():
            self.err.print(f"  {key}: {json.dumps(value)}", markup=False)
        if failure.status == 401:
            self.err.print(
                "  pass --api-key or set TBLEDGER_API_KEY; create a key with "
                "`tbledger keys create --admin --name NAME`",
                markup=False,
            )

    def progress(self, total: int) -> Progress:
        err = self.err
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=self.json or total < 2 or not err.is_terminal,
        )


def _jsonable(details: dict[str, object]) -> dict[str, Any]:
    """An error's details as the service sent them (they crossed the wire as JSON)."""
    return json.loads(json.dumps(details, default=str))  # type: ignore[no-any-return]


def _output(ctx: typer.Context, json_flag: bool) -> Output:
    root = ctx.find_root().obj
    return Output(json=json_flag or (isinstance(root, Output) and root.json))


def _die(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True, highlight=False).print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(code)


# -- HTTP -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _remote(url: str, api_key: str | None, out: Output) -> Iterator[LedgerClient]:
    """A client of the service; an error answer inside prints and exits with status 1."""
    with LedgerClient(url.rstrip("/"), api_key=api_key, timeout_s=HTTP_TIMEOUT_S) as client:
        try:
            yield client
        except TbledgerError as exc:
            answer = answer_of(exc)
            if answer is None:
                raise
            out.fail(answer)
            raise typer.Exit(1) from None


# -- shared options -------------------------------------------------------------------------------

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="TBLEDGER_API_URL", help="The running service's base URL."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TBLEDGER_API_KEY",
        help="API key (tbl_<id>_<secret>).",
        show_default=False,
    ),
]
IdemOpt = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Retry safely: the same key replays the first outcome (with --count/--repeat, "
        "suffixed per item).",
    ),
]
DataDirOpt = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="TBLEDGER_DATA_DIR",
        help="Where the embedded engine's journal and the SQLite store live by default.",
    ),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="TBLEDGER_DATABASE_URL",
        help="The store: sqlite:///path or postgresql://... (default: sqlite in the data dir)",
        show_default=False,
    ),
]
MinorFlag = Annotated[
    bool, typer.Option("--minor", help="The amount is an integer count of minor units.")
]


def _amount(value: str | None) -> str | None:
    if value is not None and not _AMOUNT.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a decimal amount like 12.50")
    return value


AmountArg = Annotated[
    str, typer.Argument(help="A decimal string in the ledger's units (12.50).", callback=_amount)
]


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _database_url(database_url: str | None, data_dir: Path) -> str:
    """The store's URL: the option or environment, else SQLite in the data dir."""
    url = database_url or _sqlite_url(data_dir / DATABASE_FILE)
    _make_parent(url)
    return url


def _make_parent(url: str) -> None:
    """Create the directory of a SQLite file or embedded journal named by `url`."""
    path: str | None = None
    if url.startswith("embedded://"):
        path = url.removeprefix("embedded://").split("?", 1)[0]
    elif url.startswith(("sqlite://", "sqlite+aiosqlite://")):
        from sqlalchemy.engine import make_url  # noqa: PLC0415 (only for SQLite URLs)

        with contextlib.suppress(Exception):
            path = make_url(url).database
    if path and path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _shown(url: str) -> str:
    """A URL fit to print: any password hidden."""
    if "@" not in url:
        return url
    from sqlalchemy.engine import make_url  # noqa: PLC0415 (only for URLs with credentials)

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<hidden>"


# -- root -----------------------------------------------------------------------------------------


@app.callback()
def _root(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """A ledger service on TigerBeetle: run the API, manage keys, move money."""
    ctx.obj = Output(json=json_output)


# -- serve ----------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    engine_url: Annotated[
        str | None,
        typer.Option(
            "--engine-url",
            envvar="TBLEDGER_ENGINE_URL",
            help="tigerbeetle://host:port?cluster_id=0, embedded:///path or memory:// "
            "(default: TIGERBEETLE_ADDRESSES, else an embedded journal in the data dir)",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseOpt = None,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error.", case_sensitive=False)
    ] = "info",
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log",
            help="Log a line per HTTP request (off by default: it costs every request, and "
            "/metrics counts requests by route and status).",
        ),
    ] = False,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds a connection may take to send a request's line and headers.",
        ),
    ] = HTTP_HEADER_TIMEOUT_S,
    body_timeout: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds a body may stall between chunks before a 408 and a close."
        ),
    ] = HTTP_BODY_IDLE_TIMEOUT_S,
    keep_alive_timeout: Annotated[
        int, typer.Option(min=1, help="Seconds an idle keep-alive connection is kept open.")
    ] = HTTP_KEEP_ALIVE_TIMEOUT_S,
) -> None:
    """Run the HTTP API (docs at /docs); system accounts are created on start-up."""
    import uvicorn  # noqa: PLC0415 (keeps the client commands' start-up fast)
    from pydantic import ValidationError as SettingsError  # noqa: PLC0415

    from tbledger.api import create_app  # noqa: PLC0415
    from tbledger.api.server import uvicorn_limits  # noqa: PLC0415
    from tbledger.config import Settings  # noqa: PLC0415

    level = log_level.lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise typer.BadParameter(f"unknown log level {log_level!r}", param_hint="--log-level")
    _configure_logging(level)
    options: dict[str, Any] = {"database_url": _database_url(database_url, data_dir)}
    if engine_url:
        options["engine_url"] = engine_url
    elif not os.environ.get("TIGERBEETLE_ADDRESSES"):
        options["engine_url"] = f"embedded://{(data_dir / ENGINE_FILE).resolve()}"
    if "engine_url" in options:
        _make_parent(options["engine_url"])
    try:
        settings = Settings(**options)
        engine = settings.engine_config()
    except (SettingsError, ValueError) as exc:
        raise _die(f"invalid settings: {exc}", 2) from None
    engine_shown = options.get("engine_url") or (
        f"tigerbeetle cluster {engine.cluster_id} at {','.join(engine.addresses or ())}"
    )
    _banner(host, port, str(engine_shown), settings.database_url, database_url, data_dir)
    config = uvicorn.Config(
        create_app(settings, freeze_gc=True, body_idle_timeout_s=body_timeout),
        host=host,
        port=port,
        log_level=level,
        log_config=None,
        access_log=access_log,
        lifespan="on",
        **uvicorn_limits(header_timeout_s=header_timeout, keep_alive_timeout_s=keep_alive_timeout),
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise typer.Exit(3)


def _configure_logging(level: str) -> None:
    """Every log line (tbledger's, uvicorn's, the migrations') through one root handler: Rich on
    a terminal, plain lines otherwise (files, journald)."""
    err = Console(stderr=True)
    handler: logging.Handler
    if err.is_terminal:
        from rich.logging import RichHandler  # noqa: PLC0415

        handler = RichHandler(console=err, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _banner(
    host: str,
    port: int,
    engine_url: str,
    database_url: str,
    database_option: str | None,
    data_dir: Path,
) -> None:
    base = f"http://{host}:{port}"
    if database_option:
        same = f" --database-url '{_shown(database_url)}'"
    elif data_dir != DEFAULT_DATA_DIR:
        same = f" --data-dir '{data_dir}'"
    else:
        same = ""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("API", f"{base}/v1")
    grid.add_row("docs", f"{base}/docs")
    grid.add_row("health", f"{base}/healthz, {base}/readyz")
    grid.add_row("engine", _shown(engine_url))
    grid.add_row("database", _shown(database_url))
    hint = Text.assemble(
        "An admin key, in another terminal (the token is shown once):\n  ",
        (f"tbledger keys create --admin --name NAME{same}", "cyan"),
        "\nthen, for example:\n  ",
        (
            f"curl -H 'Authorization: Bearer <token>' \\\n    '{base}/v1/accounts?owner_id=alice'",
            "cyan",
        ),
    )
    Console(stderr=True, highlight=False).print(
        Panel(Group(grid, Text(""), hint), title="tbledger", expand=False)
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

    out = _output(ctx, json_output)
    url = _database_url(database_url, data_dir)
    try:
        asyncio.run(upgrade_database(url))
    except Exception as exc:
        raise _die(f"cannot upgrade {_shown(url)}: {exc}") from None
    out.result(
        {"database_url": _shown(url), "upgraded": True},
        lambda: Text(f"upgraded {_shown(url)} to the latest schema"),
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


def _keys_table(keys: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title)
    for column in ("id", "name", "scope", "owner", "rate/s", "burst", "created", "revoked"):
        table.add_column(column, no_wrap=column == "id")
    for key in keys:
        table.add_row(
            key["id"],
            key["name"],
            ",".join(key["scopes"]),
            key["owner_id"] or "",
            str(key["rate_per_s"]),
            str(key["burst"]),
            (key["created_at"] or "")[:19],
            (key["revoked_at"] or "")[:19] or "[green]active[/green]",
        )
    return table


def _admin(work: Coroutine[Any, Any, _T]) -> _T:
    """Run one `tbledger.admin` job; a library error (a store that is not at the latest schema,
    an unknown key) prints and exits with status 1."""
    try:
        return asyncio.run(work)
    except TbledgerError as exc:
        raise _die(str(exc)) from None


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

    out = _output(ctx, json_output)
    if admin == (owner is not None):
        raise typer.BadParameter("pass exactly one of --admin or --owner OWNER")
    try:
        check_key(name=name, admin=admin, owner_id=owner, rate_per_s=rate, burst=burst)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None
    url = _database_url(database_url, data_dir)
    record = _admin(
        create_key(url, name=name, admin=admin, owner_id=owner, rate_per_s=rate, burst=burst)
    )
    token = record.token or ""
    data = _key_json(record, token)

    def render() -> RenderableType:
        return Group(
            _keys_table([data], title="API key created"),
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
    out = _output(ctx, json_output)
    url = _database_url(database_url, data_dir)
    records = _admin(list_keys(url))
    keys = [_key_json(r) for r in records]
    out.result({"keys": keys}, lambda: _keys_table(keys))


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after tbl_).")],
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonFlag = False,
) -> None:
    """Revoke an API key (running services stop accepting it within seconds)."""
    out = _output(ctx, json_output)
    url = _database_url(database_url, data_dir)
    record = _admin(revoke_key(url, key_id))
    data = _key_json(record)
    out.result(data, lambda: _keys_table([data], title="API key revoked"))


# -- rendering of API answers ---------------------------------------------------------------------


def _account_table(accounts: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    for column in ("type", "owner", "name", "ledger", "status"):
        table.add_column(column)
    for column in ("posted", "available", "held"):
        table.add_column(column, justify="right")
    for account in accounts:
        balance = account.get("balance") or {}
        table.add_row(
            account["id"],
            account["account_type"],
            account.get("owner_id") or "",
            account.get("name") or "",
            account.get("ledger_name") or str(account["ledger"]),
            account["status"],
            balance.get("posted", ""),
            balance.get("available", ""),
            balance.get("held", ""),
        )
    return table


def _account_view(account: dict[str, Any], title: str) -> RenderableType:
    fields = dict(account)
    fields["ledger"] = account.get("ledger_name") or str(account["ledger"])
    balance = account.get("balance") or {}
    for key in ("posted", "available", "pending", "held"):
        if key in balance:
            fields[key] = balance[key]
    keys = ["id", "account_type", "owner_id", "name", "ledger", "status", "code", "metadata"]
    keys += ["posted", "available", "pending", "held", "created_at"]
    fields["created_at"] = str(account.get("created_at") or "")[:19]
    return _fields_table(fields, title, keys)


def _balance_table(balances: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="balances")
    table.add_column("account", no_wrap=True)
    table.add_column("ledger")
    table.add_column("side")
    for column in ("posted", "available", "pending", "held"):
        table.add_column(column, justify="right")
    for b in balances:
        table.add_row(
            b["account_id"],
            b.get("ledger_name") or str(b["ledger"]),
            b["normal_side"],
            b["posted"],
            b["available"],
            b["pending"],
            b["held"],
        )
    return table


def _results_table(results: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    table.add_column("transfer", no_wrap=True)
    table.add_column("status")
    table.add_column("ok")
    table.add_column("replayed")
    for r in results:
        style = "green" if r.get("ok") else "red"
        table.add_row(
            r["id"],
            Text(str(r["status"]), style=style),
            "yes" if r.get("ok") else "no",
            "yes" if r.get("replayed") else "",
        )
    return table


def _fields_table(data: dict[str, Any], title: str, keys: Sequence[str] | None = None) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in keys or list(data):
        value = data.get(key)
        if value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        table.add_row(key, text)
    return table


def _transfer_view(transfer: dict[str, Any]) -> RenderableType:
    summary = _fields_table(
        transfer,
        f"transfer {transfer['id']}",
        [
            "id",
            "status",
            "debit_account_id",
            "credit_account_id",
            "amount",
            "amount_minor",
            "ledger_name",
            "ledger",
            "code",
            "pending_id",
            "flags",
            "timeout_s",
            "timestamp",
            "payment_id",
            "event_id",
            "chain_tx_hash",
            "metadata",
        ],
    )
    history = Table(title="audit history")
    for column in ("seq", "kind", "status", "recorded at", "detail"):
        history.add_column(column)
    for event in transfer.get("audit") or []:
        history.add_row(
            str(event["seq"]),
            event["kind"],
            event.get("status") or "",
            str(event.get("recorded_at") or "")[:23],
            json.dumps(event.get("detail") or {}),
        )
    return Group(summary, history)


# -- accounts -------------------------------------------------------------------------------------


@accounts_app.command("create")
def accounts_create(
    ctx: typer.Context,
    ledger: Annotated[str, typer.Option(help="The ledger's chart name (USD) or number.")],
    account_type: Annotated[
        str,
        typer.Option(
            "--type",
            help="user, merchant, treasury, escrow, fee_pool, anchor, system_buffer or control.",
        ),
    ] = "user",
    owner: Annotated[str | None, typer.Option(help="The owner id.", show_default=False)] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="A unique name (admin keys; suffixed -N with --count).", show_default=False
        ),
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=100_000, help="How many to open.")] = 1,
    idempotency_key: IdemOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Open one account (or --count of them)."""
    out = _output(ctx, json_output)
    created: list[dict[str, Any]] = []
    with _remote(url, api_key, out) as remote, out.progress(count) as progress:
        task = progress.add_task("opening accounts", total=count)
        for index in range(count):
            named = None if name is None else (name if count == 1 else f"{name}-{index + 1}")
            key = idempotency_key
            if key is not None and count > 1:
                key = f"{key}-{index + 1}"
            opened = remote.create_account(
                ledger=ledger,
                account_type=account_type,
                owner_id=owner,
                name=named,
                idempotency_key=key,
            )
            created.append(opened.to_json())
            progress.advance(task)
    if count == 1:
        out.result(created[0], lambda: _account_view(created[0], "account opened"))
    else:
        out.result(
            {"accounts": created},
            lambda: _account_table(created, title=f"{count} accounts opened"),
        )


@accounts_app.command("show")
def accounts_show(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Argument(help="The account's id.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """An account with its balance."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        account = remote.get_account(account_id).to_json()
    out.result(account, lambda: _account_view(account, "account"))


@accounts_app.command("list")
def accounts_list(
    ctx: typer.Context,
    owner: Annotated[str, typer.Option(help="The owner whose accounts to list.")],
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """An owner's accounts with their balances."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        listing = remote.list_accounts(owner_id=owner, limit=limit).to_json()
    accounts = listing["accounts"]
    out.result(listing, lambda: _account_table(accounts, title=f"accounts of {owner}"))


def _status_command(
    action: str, account_id: str, url: str, api_key: str | None, out: Output
) -> None:
    with _remote(url, api_key, out) as remote:
        change = {
            "freeze": remote.freeze_account,
            "unfreeze": remote.unfreeze_account,
            "close": remote.close_account,
        }[action]
        account = change(account_id).to_json()
    out.result(account, lambda: _account_view(account, f"account {account['status']}"))


@accounts_app.command("freeze")
def accounts_freeze(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Argument(help="The account's id.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Freeze an account: every new transfer touching it is refused (admin key)."""
    _status_command("freeze", account_id, url, api_key, _output(ctx, json_output))


@accounts_app.command("unfreeze")
def accounts_unfreeze(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Argument(help="The account's id.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Unfreeze a frozen account (admin key)."""
    _status_command("unfreeze", account_id, url, api_key, _output(ctx, json_output))


@accounts_app.command("close")
def accounts_close(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Argument(help="The account's id.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Close an account for good; its balance goes to the ledger's control account (admin key)."""
    _status_command("close", account_id, url, api_key, _output(ctx, json_output))


# -- balances and transfers -----------------------------------------------------------------------


@app.command()
def balance(
    ctx: typer.Context,
    account_ids: Annotated[list[str], typer.Argument(help="One or more account ids.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Balances: posted, available (holds deducted), pending and held."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        if len(account_ids) == 1:
            balances = [remote.get_balance(account_ids[0]).to_json()]
        else:
            balances = [b.to_json() for b in remote.get_balances(account_ids)]
    data: Any = balances[0] if len(balances) == 1 else {"balances": balances}
    out.result(data, lambda: _balance_table(balances))


def _ledger_of(remote: LedgerClient, account_id: str) -> str:
    account = remote.get_account(account_id)
    return str(account.ledger_name or account.ledger)


def _transfer_body(
    debit: str,
    credit: str,
    amount: str,
    ledger: str,
    *,
    minor: bool,
    code: str,
    event_id: str | None,
    payment_id: str | None,
    transfer_id: str | None = None,
    timeout_s: int = 0,
) -> TransferSpec:
    return TransferSpec(
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        amount_unit="minor" if minor else "major",
        ledger=ledger,
        code=code,
        event_id=event_id,
        payment_id=payment_id,
        transfer_id=transfer_id,
        timeout_s=timeout_s or None,
    )


LedgerOpt = Annotated[
    str | None,
    typer.Option(help="The ledger, USD or 1 (default: the debit account's).", show_default=False),
]
CodeOpt = Annotated[str, typer.Option(help="The transfer code's chart name or number.")]
EventOpt = Annotated[
    str | None, typer.Option("--event-id", help="An event id to record.", show_default=False)
]
PaymentOpt = Annotated[
    str | None, typer.Option("--payment-id", help="A payment id to record.", show_default=False)
]
DebitArg = Annotated[str, typer.Argument(help="The account money leaves (debit).")]
CreditArg = Annotated[str, typer.Argument(help="The account money goes to (credit).")]


@app.command()
def transfer(
    ctx: typer.Context,
    debit: DebitArg,
    credit: CreditArg,
    amount: AmountArg,
    ledger: LedgerOpt = None,
    minor: MinorFlag = False,
    code: CodeOpt = "PAYMENT",
    transfer_id: Annotated[
        str | None, typer.Option("--id", help="Choose the transfer's id.", show_default=False)
    ] = None,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    repeat: Annotated[int, typer.Option(min=1, max=1_000_000, help="Send it N times.")] = 1,
    idempotency_key: IdemOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Move AMOUNT from DEBIT to CREDIT now. A refusal (e.g. exceeds_credits) exits 1."""
    out = _output(ctx, json_output)
    if transfer_id is not None and repeat > 1:
        raise typer.BadParameter("--id names one transfer; it cannot be used with --repeat")
    results: list[dict[str, Any]] = []
    refused: list[HttpApiError] = []
    with _remote(url, api_key, out) as remote:
        book = ledger or _ledger_of(remote, debit)
        body = _transfer_body(
            debit,
            credit,
            amount,
            book,
            minor=minor,
            code=code,
            event_id=event_id,
            payment_id=payment_id,
            transfer_id=transfer_id,
        )
        if repeat == 1:
            result = remote.create_transfer(body, idempotency_key=idempotency_key).to_json()
            out.result(result, lambda: _results_table([result], "transfer"))
            return
        with out.progress(repeat) as progress:
            task = progress.add_task("transferring", total=repeat)
            for index in range(repeat):
                key = None if idempotency_key is None else f"{idempotency_key}-{index + 1}"
                try:
                    results.append(remote.create_transfer(body, idempotency_key=key).to_json())
                except TbledgerError as exc:
                    failure = answer_of(exc)
                    if failure is None or failure.status != 409:
                        raise
                    refused.append(failure)
                    results.append({"id": None, "status": failure.code, "ok": False})
                progress.advance(task)
    created = sum(1 for r in results if r.get("ok"))
    summary = {"created": created, "failed": len(results) - created, "results": results}

    def render() -> RenderableType:
        table = Table(title=f"{repeat} transfers")
        table.add_column("status")
        table.add_column("count", justify="right")
        counts: dict[str, int] = {}
        for r in results:
            counts[str(r["status"])] = counts.get(str(r["status"]), 0) + 1
        for status, n in sorted(counts.items()):
            table.add_row(status, str(n))
        return table

    out.result(summary, render)
    if refused:
        raise typer.Exit(1)


@app.command()
def hold(
    ctx: typer.Context,
    debit: DebitArg,
    credit: CreditArg,
    amount: AmountArg,
    ledger: LedgerOpt = None,
    minor: MinorFlag = False,
    code: CodeOpt = "PAYMENT",
    timeout: Annotated[
        int, typer.Option(min=0, help="Seconds until the hold expires (0: never).")
    ] = 0,
    transfer_id: Annotated[
        str | None, typer.Option("--id", help="Choose the hold's id.", show_default=False)
    ] = None,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: IdemOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Place a hold (a pending transfer) of AMOUNT from DEBIT to CREDIT; `post` or `void` it."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        book = ledger or _ledger_of(remote, debit)
        body = _transfer_body(
            debit,
            credit,
            amount,
            book,
            minor=minor,
            code=code,
            event_id=event_id,
            payment_id=payment_id,
            transfer_id=transfer_id,
            timeout_s=timeout,
        )
        result = remote.create_pending_transfer(body, idempotency_key=idempotency_key).to_json()
    out.result(result, lambda: _results_table([result], "hold"))


PendingArg = Annotated[str, typer.Argument(help="The hold's (pending transfer's) id.")]


@app.command()
def post(
    ctx: typer.Context,
    pending_id: PendingArg,
    amount: Annotated[
        str | None,
        typer.Option(
            help="Post only this much (the rest is released) (default: all).",
            callback=_amount,
            show_default=False,
        ),
    ] = None,
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: IdemOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Post a hold, in full or in part."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        result = remote.post_pending_transfer(
            pending_id,
            amount=amount,
            amount_unit="minor" if minor else "major",
            event_id=event_id or None,
            payment_id=payment_id or None,
            idempotency_key=idempotency_key,
        ).to_json()
    out.result(result, lambda: _results_table([result], "posted"))


@app.command()
def void(
    ctx: typer.Context,
    pending_id: PendingArg,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: IdemOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Void a hold: release all of it."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        result = remote.void_pending_transfer(
            pending_id,
            event_id=event_id or None,
            payment_id=payment_id or None,
            idempotency_key=idempotency_key,
        ).to_json()
    out.result(result, lambda: _results_table([result], "voided"))


@app.command()
def audit(
    ctx: typer.Context,
    transfer_id: Annotated[str, typer.Argument(help="The transfer's id.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """A transfer as the engine holds it, with its audit history."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        found = remote.get_transfer(transfer_id).to_json()
    out.result(found, lambda: _transfer_view(found))


@app.command()
def recover(
    ctx: typer.Context,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Resolve every transfer intent without an outcome now (admin key)."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        report = remote.recover().to_json()
    out.result(report, lambda: _fields_table(report, "recovery"))


# -- prices ---------------------------------------------------------------------------------------


def _rates_table(rates: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="current exchange rates")
    for column in ("from", "to", "rate", "valid from", "valid until", "source", "set by"):
        table.add_column(column)
    for rate in rates:
        table.add_row(
            rate["source_ledger_name"],
            rate["target_ledger_name"],
            rate["rate"],
            str(rate["valid_from"])[:19],
            str(rate.get("valid_until") or "")[:19],
            rate["source"],
            rate.get("set_by") or "",
        )
    return table


@rates_app.command("set")
def rates_set(
    ctx: typer.Context,
    source_ledger: Annotated[str, typer.Argument(help="The ledger sold (USD).")],
    target_ledger: Annotated[str, typer.Argument(help="The ledger bought (EUR).")],
    rate: Annotated[
        str, typer.Argument(help="Units of the target per unit of the source (0.915), exact.")
    ],
    source: Annotated[
        str, typer.Option(help="Where the rate came from (ECB 2026-12-07).")
    ] = "manual",
    valid_from: Annotated[
        str | None,
        typer.Option(help="ISO 8601 time with its offset (default: now).", show_default=False),
    ] = None,
    valid_until: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 time with its offset (default: until superseded).", show_default=False
        ),
    ] = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Set the operator's exchange rate for a pair; it supersedes the older one (admin key)."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        stored = remote.set_rate(
            source_ledger=source_ledger,
            target_ledger=target_ledger,
            rate=rate,
            source=source,
            valid_from=valid_from,
            valid_until=valid_until,
        ).to_json()
    out.result(stored, lambda: _rates_table([stored]))


@rates_app.command("list")
def rates_list(
    ctx: typer.Context,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """The current rate of every pair that has one."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        listing = {"rates": [r.to_json() for r in remote.rates()]}
    out.result(listing, lambda: _rates_table(listing["rates"]))


@fees_app.command("set")
def fees_set(
    ctx: typer.Context,
    merchant_id: Annotated[str, typer.Argument(help="The merchant account's id.")],
    bps: Annotated[
        int, typer.Option(min=0, max=10_000, help="Basis points of the amount (100 = 1%).")
    ] = 0,
    fixed: Annotated[
        str, typer.Option(help="A fixed part, in the merchant ledger's units.", callback=_amount)
    ] = "0",
    payer: Annotated[
        str, typer.Option(help="Who pays: payer (on top) or merchant (out of the amount).")
    ] = "payer",
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Set a merchant's fee schedule; payments to it are charged by it from now on (admin key)."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        stored = remote.set_fee_schedule(
            merchant_id, fee_bps=bps, fee_fixed=fixed, fee_payer=payer
        ).to_json()
    out.result(stored, lambda: _fields_table(stored, "fee schedule"))


@fees_app.command("show")
def fees_show(
    ctx: typer.Context,
    merchant_id: Annotated[str, typer.Argument(help="The merchant account's id.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """What a payment to a merchant is charged: its schedule, or the platform default."""
    out = _output(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        shown = remote.fee_schedule(merchant_id).to_json()
    out.result(shown, lambda: _fields_table(shown, "fee schedule"))


# -- demo -----------------------------------------------------------------------------------------


@app.command()
def demo(
    engine: Annotated[
        str, typer.Option(help="Engine URL: memory://, embedded:///path or tigerbeetle://...")
    ] = "memory://",
) -> None:
    """A short demonstration on the engine: accounts, transfers, a hold, balances moving."""
    from tbledger.errors import TbledgerError  # noqa: PLC0415
    from tbledger.tools.demo import run_demo  # noqa: PLC0415

    console = Console(highlight=False)
    _make_parent(engine)
    try:
        asyncio.run(run_demo(engine, out=lambda line: console.print(line, markup=False)))
    except TbledgerError as exc:
        raise _die(str(exc)) from None


@app.command()
def loadtest(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Option(help="http: a running service; library: LedgerService in this process.")
    ] = "http",
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    engine_url: Annotated[
        str,
        typer.Option(
            "--engine-url",
            envvar="TBLEDGER_ENGINE_URL",
            help="library target: memory://, embedded:///path or tigerbeetle://...",
        ),
    ] = "memory://",
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="TBLEDGER_DATABASE_URL",
            help="library target: the store (default: a temporary SQLite file)",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.001, help="Requests a second (captures included).")
    ] = 100.0,
    duration: Annotated[
        float, typer.Option(min=0.001, help="Seconds measured, after the warm-up.")
    ] = 10.0,
    arrivals: Annotated[str, typer.Option(help="constant or poisson.")] = "constant",
    seed: Annotated[int, typer.Option(help="Seed of the schedule and the operations.")] = 1,
    accounts: Annotated[int, typer.Option(min=3, help="User accounts to open and fund.")] = 100,
    merchants: Annotated[
        int | None,
        typer.Option(min=1, help="Merchant accounts (default: accounts/10).", show_default=False),
    ] = None,
    hot_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests touching one hot account.")
    ] = 0.0,
    mix: Annotated[
        str, typer.Option(help="Weights of payments (with fees), holds (+capture), transfers.")
    ] = "payment=60,hold=20,transfer=20",
    ledger: Annotated[str, typer.Option(help="The ledger's chart name or number.")] = "USD",
    connections: Annotated[
        int, typer.Option(min=1, help="HTTP connection pool size and most requests in flight.")
    ] = 256,
    capture_delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds from a hold's answer to its capture.")
    ] = 0.05,
    check_sample: Annotated[
        int, typer.Option(min=0, help="Transfer ids to audit after the run (0: all).")
    ] = 0,
    warmup: Annotated[
        float, typer.Option(min=0.0, help="Seconds of load before measuring starts.")
    ] = 2.0,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the report (JSON) to this file.", show_default=False),
    ] = None,
) -> None:
    """Open-loop load at a fixed rate, latency from each request's intended start, then ledger
    checks. Exits 1 on any error or failed check."""
    from tbledger.tools.loadtest import command  # noqa: PLC0415 (keeps other commands' start-up fast)

    root = ctx.find_root().obj
    try:
        status = command(
            target=target,
            url=url,
            api_key=api_key,
            engine_url=engine_url,
            database_url=database_url,
            rate=rate,
            duration=duration,
            arrivals=arrivals,
            seed=seed,
            accounts=accounts,
            merchants=merchants,
            hot_fraction=hot_fraction,
            mix=mix,
            ledger=ledger,
            connections=connections,
            capture_delay=capture_delay,
            check_sample=check_sample,
            warmup=warmup,
            json_path=json_path,
            json_stdout=isinstance(root, Output) and root.json,
        )
    except ValueError as exc:
        raise _die(str(exc), 2) from None
    if status:
        raise typer.Exit(status)


@app.command()
def bench(
    only: Annotated[
        str,
        typer.Option(
            "--only", help="Sections, comma-separated: engine, service, http, baseline, sweep."
        ),
    ] = "engine,service,http,baseline,sweep",
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (CI, tests).")] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for results.json and the PNG charts.")
    ] = Path("bench-results"),
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url",
            help="PostgreSQL for the audit trail and the baseline (default: "
            "TBLEDGER_BENCH_DATABASE_URL, TBLEDGER_TEST_DATABASE_URL, else the local server).",
            show_default=False,
        ),
    ] = None,
    tigerbeetle_bin: Annotated[
        str | None,
        typer.Option(
            "--tigerbeetle-bin",
            envvar="TIGERBEETLE_BIN",
            help="A TigerBeetle server binary: a fresh replica is started for the run.",
            show_default=False,
        ),
    ] = None,
    tigerbeetle_addresses: Annotated[
        str | None,
        typer.Option(
            "--tigerbeetle-addresses",
            envvar="TIGERBEETLE_ADDRESSES",
            help="A running TigerBeetle cluster (fresh accounts are created in it).",
            show_default=False,
        ),
    ] = None,
    docs: Annotated[
        Path | None,
        typer.Option(
            "--docs",
            help="Also write the performance document here, from results.json.",
            show_default=False,
        ),
    ] = None,
    render_only: Annotated[
        bool,
        typer.Option(
            "--render-only", help="Only (re)generate --docs from OUT/results.json; run nothing."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the workloads' RNGs.")] = 42,
    repeat: Annotated[
        int | None,
        typer.Option(
            min=1, help="Timed runs per figure (default 3, 1 with --quick).", show_default=False
        ),
    ] = None,
) -> None:
    """The benchmark suite, in one run: every figure a ratio to a baseline of the same run."""
    from tbledger.tools.bench import SECTIONS, BenchOptions, run  # noqa: PLC0415

    sections = tuple(s.strip() for s in only.split(",") if s.strip())
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        raise _die(f"--only: choose from {', '.join(SECTIONS)} (got {only!r})", 2)
    options = BenchOptions(
        sections=tuple(s for s in SECTIONS if s in sections),
        quick=quick,
        out=out,
        postgres_url=postgres_url,
        tigerbeetle_bin=tigerbeetle_bin,
        tigerbeetle_addresses=tigerbeetle_addresses,
        tigerbeetle_cluster_id=int(os.environ.get("TIGERBEETLE_CLUSTER_ID", "0")),
        docs=docs,
        render_only=render_only,
        seed=seed,
        repeat=repeat,
    )
    status = run(options)
    if status:
        raise typer.Exit(status)


# -- entry point ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` (default: ``sys.argv[1:]``); the exit status."""
    try:
        app(args=sys.argv[1:] if argv is None else argv, prog_name="tbledger")
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    return 0
