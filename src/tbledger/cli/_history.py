"""``tbledger accounts history|activity|statement``: an account over time, through a running
service (registered on the ``accounts`` group by ``tbledger.cli``).

Each command makes one call of `tbledger.client` (``balance_history``, ``account_activity``,
``statement``) and renders the answer for people: times in ISO 8601 UTC, amounts in the ledger's
units, counterparties' names beside their ids where the key may see them, and the cursor of the
next page (``--cursor``); ``--json`` prints the answer as the service sent it. ``statement
--csv FILE`` also writes the statement as the service's CSV. (``balance --as-of`` is with the
other balance command, in ``_service``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tbledger.cli._options import DEFAULT_API_URL, ApiKeyOpt, JsonFlag, UrlOpt
from tbledger.cli._output import activity_table, history_table, output_of, statement_view
from tbledger.cli._service import remote_client

__all__ = ["accounts_activity", "accounts_history", "accounts_statement"]

AccountArg = Annotated[str, typer.Argument(help="The account's id.")]
_TIME_HELP = "engine ns or ISO 8601 (UTC if no offset)"
FromOpt = Annotated[
    str | None,
    typer.Option("--from", help=f"From this time, included: {_TIME_HELP}.", show_default=False),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help=f"Until this time, excluded: {_TIME_HELP}.", show_default=False),
]
LimitOpt = Annotated[int, typer.Option(min=1, max=1000, help="At most this many on a page.")]
CursorOpt = Annotated[
    str | None,
    typer.Option(help="Where the previous page ended (its 'more: --cursor').", show_default=False),
]
ReverseFlag = Annotated[bool, typer.Option("--reverse", help="Newest first.")]


def accounts_history(
    ctx: typer.Context,
    account_id: AccountArg,
    start: FromOpt = None,
    end: ToOpt = None,
    limit: LimitOpt = 100,
    cursor: CursorOpt = None,
    reverse: ReverseFlag = False,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """The account's balance after each of its transfers, from its opening."""
    out = output_of(ctx, json_output)
    with remote_client(url, api_key, out) as remote:
        history = remote.balance_history(
            account_id, start=start, end=end, limit=limit, cursor=cursor, reverse=reverse
        ).to_json()
    out.result(history, lambda: history_table(history))


def accounts_activity(
    ctx: typer.Context,
    account_id: AccountArg,
    start: FromOpt = None,
    end: ToOpt = None,
    code: Annotated[
        str | None,
        typer.Option(help="Only this transfer code (chart name or number).", show_default=False),
    ] = None,
    counterparty: Annotated[
        str | None,
        typer.Option(
            help="Only transfers with this account on the other side.", show_default=False
        ),
    ] = None,
    flow: Annotated[
        str | None,
        typer.Option(help="Only this flow (deposit, payment, ...).", show_default=False),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only this audit status (posted, pending, voided, ...).", show_default=False
        ),
    ] = None,
    limit: LimitOpt = 100,
    cursor: CursorOpt = None,
    reverse: ReverseFlag = False,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """The account's transfers, with their counterparty, flow, status and captured amounts."""
    out = output_of(ctx, json_output)
    with remote_client(url, api_key, out) as remote:
        activity = remote.account_activity(
            account_id,
            start=start,
            end=end,
            code=code,
            counterparty=counterparty,
            flow=flow,
            status=status,
            limit=limit,
            cursor=cursor,
            reverse=reverse,
        ).to_json()
    out.result(activity, lambda: activity_table(activity))


def accounts_statement(
    ctx: typer.Context,
    account_id: AccountArg,
    start: Annotated[str, typer.Option("--from", help=f"The period's start: {_TIME_HELP}.")],
    end: Annotated[str, typer.Option("--to", help=f"The period's end, excluded: {_TIME_HELP}.")],
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv", help="Also write the statement to this file as CSV.", show_default=False
        ),
    ] = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """The account's statement for [--from, --to): opening, every line with the running
    balance, closing."""
    out = output_of(ctx, json_output)
    with remote_client(url, api_key, out) as remote:
        statement = remote.statement(account_id, start=start, end=end).to_json()
        text = None if csv_file is None else remote.statement_csv(account_id, start=start, end=end)
    if csv_file is not None and text is not None:
        # The service's CSV as it sent it (CRLF rows, as CSV files have them).
        csv_file.write_bytes(text.encode())
        out.note(f"statement written to {csv_file}")
    out.result(statement, lambda: statement_view(statement))
