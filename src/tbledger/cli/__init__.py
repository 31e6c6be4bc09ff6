"""The ``tbledger`` command line (Typer + Rich).

Three kinds of command:

* ``serve`` runs the HTTP API (uvicorn) on the embedded engine and SQLite by default, with the
  data under ``./.tbledger``; ``TBLEDGER_ENGINE_URL`` / ``TIGERBEETLE_ADDRESSES`` and
  ``TBLEDGER_DATABASE_URL`` (or the options) point it at a TigerBeetle cluster and PostgreSQL.
* ``db upgrade`` and ``keys create|list|revoke`` work on the store through `tbledger.admin`,
  no server needed; so do ``webhooks create|list|delete|rotate|replay|enable|deliveries``
  (through `tbledger.webhooks.manage`), and ``webhooks run`` delivers webhooks; ``cdc run``
  consumes TigerBeetle's change stream into the store (and ``--supervise`` runs its job).
* ``accounts`` (with an account's ``history``, ``activity`` and ``statement``), ``balance``
  (now or ``--as-of`` a time), ``transfer``, ``hold``, ``post``, ``void``, ``audit``,
  ``recover``, ``rates`` (the operator's exchange rates) and ``fees`` (merchants' fee
  schedules) talk to a running service over HTTP through `tbledger.client` (``--url`` /
  ``TBLEDGER_API_URL``, ``--api-key`` / ``TBLEDGER_API_KEY``), and so do the payment flows:
  ``deposit``, ``withdraw``, ``pay``, ``refund`` (``refundable``), ``settle``,
  ``reverse-settlement``, ``exchange`` (``quote``), ``escrow lock|release|void``,
  ``anchor authorize|fulfil|release|status`` and ``liquidity fund|show``.

``demo``, ``loadtest`` and ``bench`` start the tools, imported only when they run.

Output is a Rich table by default and JSON with ``--json`` (before or after the command name);
errors go to stderr (in JSON mode, an error object on stdout) with a non-zero exit status.

This module is the face: the application, its root option, and every command registered in
the order ``tbledger --help`` lists them. The commands live in the private modules by what they
talk to: ``_service`` (a running service), ``_history`` (an account over time, through it),
``_flows`` (the payment flows, through it), ``_serve`` (the service itself), ``_admin`` (the
store, through `tbledger.admin`), ``_tools`` (the tools); ``_output`` renders and ``_options``
holds the options they share.
"""

from __future__ import annotations

import sys

import typer

from tbledger.cli._admin import db_app, keys_app
from tbledger.cli._cdc import cdc_app
from tbledger.cli._flows import (
    anchor_app,
    deposit,
    escrow_app,
    exchange,
    liquidity_app,
    pay,
    quote,
    refund,
    refundable,
    reverse_settlement,
    settle,
    withdraw,
)
from tbledger.cli._history import accounts_activity, accounts_history, accounts_statement
from tbledger.cli._options import JsonFlag
from tbledger.cli._output import Output
from tbledger.cli._serve import serve
from tbledger.cli._service import (
    accounts_app,
    audit,
    balance,
    fees_app,
    hold,
    post,
    rates_app,
    recover,
    transfer,
    void,
)
from tbledger.cli._tools import bench, demo, loadtest
from tbledger.cli._webhooks import webhooks_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="tbledger",
    help="A ledger service on TigerBeetle: run the API, manage keys, move money.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """A ledger service on TigerBeetle: run the API, manage keys, move money."""
    ctx.obj = Output(json=json_output)


# Help lists commands in the order they are registered here, then the groups.
# The payment flows come after the transfers they are made of.
for _command in (
    *(serve, balance, transfer, hold, post, void),
    *(deposit, withdraw, pay, refund, refundable, settle, reverse_settlement, exchange, quote),
    *(audit, recover, demo, loadtest, bench),
):
    app.command()(_command)
# An account over time, in the accounts group after the commands it declares itself.
accounts_app.command("history")(accounts_history)
accounts_app.command("activity")(accounts_activity)
accounts_app.command("statement")(accounts_statement)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(accounts_app, name="accounts")
app.add_typer(rates_app, name="rates")
app.add_typer(fees_app, name="fees")
app.add_typer(escrow_app, name="escrow")
app.add_typer(anchor_app, name="anchor")
app.add_typer(liquidity_app, name="liquidity")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(cdc_app, name="cdc")


def main(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` (default: ``sys.argv[1:]``); the exit status."""
    try:
        app(args=sys.argv[1:] if argv is None else argv, prog_name="tbledger")
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    return 0
