"""The options several commands share, and what the local ones resolve to.

One definition per option keeps its flag, environment variable and help text the same on every
command that takes it. Amounts arrive as text and leave here typed (`amount_of`): a `Decimal` of
the ledger's units, or an ``int`` of minor units with ``--minor``, which is how `tbledger.client`
reads them (it refuses text). The data directory and the store's URL are resolved here because both
``serve`` and the admin commands (``keys``, ``db``) must find the same SQLite file by default.
"""

from __future__ import annotations

import contextlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_DATA_DIR",
    "AmountArg",
    "ApiKeyOpt",
    "DataDirOpt",
    "DatabaseOpt",
    "IdemOpt",
    "JsonFlag",
    "MinorFlag",
    "UrlOpt",
    "amount_checked",
    "amount_of",
    "database_url_of",
    "make_parent",
]

DEFAULT_DATA_DIR = Path(".tbledger")
DATABASE_FILE = "tbledger.db"
DEFAULT_API_URL = "http://127.0.0.1:8000"
_AMOUNT = re.compile(r"[0-9]{1,39}(\.[0-9]{1,38})?")
_MINOR = re.compile(r"[0-9]{1,39}")

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


def amount_checked(value: str | None) -> str | None:
    """An amount option's callback: a decimal string, refused early with a usage error (exit 2)
    rather than after a round trip to the service."""
    if value is not None and not _AMOUNT.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a decimal amount like 12.50")
    return value


def amount_of(text: str, *, minor: bool) -> int | Decimal:
    """A checked amount's text (`amount_checked`) as the client takes it: an int of minor units
    with ``--minor`` (a usage error, exit 2, if it has a fraction), else a Decimal of the
    ledger's units, exactly (the service refuses more places than the ledger has)."""
    if minor:
        if not _MINOR.fullmatch(text):
            raise typer.BadParameter(f"{text!r} is not a whole number of minor units (--minor)")
        return int(text)
    return Decimal(text)


AmountArg = Annotated[
    str,
    typer.Argument(help="A decimal string in the ledger's units (12.50).", callback=amount_checked),
]


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def database_url_of(database_url: str | None, data_dir: Path) -> str:
    """The store's URL: the option or environment, else SQLite in the data dir."""
    url = database_url or _sqlite_url(data_dir / DATABASE_FILE)
    make_parent(url)
    return url


def existing_store_url(database_url: str | None, data_dir: Path) -> str:
    """The store's URL for commands that manage a store a service already uses (keys): with no
    URL given, the SQLite file in `data_dir` must exist. Run from another folder, the default
    data dir would otherwise be a new, empty store that no running service reads."""
    if database_url is not None:
        return database_url_of(database_url, data_dir)
    path = (data_dir / DATABASE_FILE).resolve()
    if not path.exists():
        raise typer.BadParameter(
            f"no store at {path}: run this in the folder where `tbledger serve` runs (its data "
            f"dir is ./{DEFAULT_DATA_DIR}), or pass --data-dir DIR (the folder holding "
            f"{DATABASE_FILE}) or --database-url / TBLEDGER_DATABASE_URL",
            param_hint="--data-dir",
        )
    return _sqlite_url(path)


def make_parent(url: str) -> None:
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
