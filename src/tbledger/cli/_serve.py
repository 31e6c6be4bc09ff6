"""``tbledger serve``: the HTTP API under uvicorn, configured from options and the environment.

The only command that builds a service in this process; it imports the API, uvicorn and the
settings inside the command so every other command starts without them. By default the engine
is an embedded journal and the store a SQLite file, both in the data directory, so a first run
needs nothing else; a TigerBeetle cluster and PostgreSQL are named by URL.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tbledger.cli._options import (
    DEFAULT_DATA_DIR,
    DatabaseOpt,
    DataDirOpt,
    database_url_of,
    make_parent,
)
from tbledger.cli._output import die, shown
from tbledger.errors import ConfigurationError
from tbledger.limits import (
    HTTP_BODY_IDLE_TIMEOUT_S,
    HTTP_HEADER_TIMEOUT_S,
    HTTP_KEEP_ALIVE_TIMEOUT_S,
)

__all__ = ["serve"]

ENGINE_FILE = "engine.tbj"


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

    from tbledger.api import create_app  # noqa: PLC0415
    from tbledger.api.server import uvicorn_limits  # noqa: PLC0415
    from tbledger.config import Settings  # noqa: PLC0415

    level = log_level.lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise typer.BadParameter(f"unknown log level {log_level!r}", param_hint="--log-level")
    _configure_logging(level)
    options: dict[str, Any] = {"database_url": database_url_of(database_url, data_dir)}
    if engine_url:
        options["engine_url"] = engine_url
    elif not os.environ.get("TIGERBEETLE_ADDRESSES"):
        options["engine_url"] = f"embedded://{(data_dir / ENGINE_FILE).resolve()}"
    if "engine_url" in options:
        make_parent(options["engine_url"])
    try:
        # Refusals name the fields at fault, and the environment variables they are read from.
        settings = Settings(**options)
    except ConfigurationError as exc:
        raise die(str(exc), 2) from None
    try:
        engine = settings.engine_config()
    except ConfigurationError as exc:
        raise die(f"invalid settings: {exc}", 2) from None
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
        same = f" --database-url '{shown(database_url)}'"
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
    grid.add_row("engine", shown(engine_url))
    grid.add_row("database", shown(database_url))
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
