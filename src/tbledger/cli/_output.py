"""How the command line shows things: the output mode, errors, and the tables of API answers.

Every command hands its result to `Output.result` as the JSON it prints with ``--json`` and a
function that draws the Rich table otherwise, so the two views never drift apart; notes and
errors go to stderr (in JSON mode an error is an object on stdout, for scripts). The renderers
take the answers' JSON, the same dictionaries ``--json`` prints, so one path feeds both views.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import typer
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tbledger.errors import HttpApiError, TbledgerError

__all__ = [
    "Output",
    "account_table",
    "account_view",
    "activity_table",
    "as_of_table",
    "balance_table",
    "die",
    "fields_table",
    "flow_view",
    "history_table",
    "keys_table",
    "output_of",
    "priced_view",
    "rates_table",
    "results_table",
    "run_or_exit",
    "shown",
    "statement_view",
    "transfer_view",
]

OUTPUT_WIDTH_PIPED = 200

_T = TypeVar("_T")


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


def output_of(ctx: typer.Context, json_flag: bool) -> Output:
    """The command's output: JSON if ``--json`` came after the command or before it."""
    root = ctx.find_root().obj
    return Output(json=json_flag or (isinstance(root, Output) and root.json))


def die(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True, highlight=False).print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(code)


def shown(url: str) -> str:
    """A URL fit to print: any password hidden."""
    if "@" not in url:
        return url
    from sqlalchemy.engine import make_url  # noqa: PLC0415 (only for URLs with credentials)

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<hidden>"


def run_or_exit(work: Coroutine[Any, Any, _T]) -> _T:
    """Run one job of the library in this process; a library error (a store that is not at the
    latest schema, an unknown key, an engine that cannot be reached) prints and exits with
    status 1."""
    try:
        return asyncio.run(work)
    except TbledgerError as exc:
        raise die(str(exc)) from None


# -- rendering of API answers ---------------------------------------------------------------------


def _to_second(timestamp: str | None) -> str:
    """An ISO 8601 time cut to the second for a table (the JSON keeps it whole); none is blank."""
    return str(timestamp or "")[:19]


def _ledger(answer: dict[str, Any]) -> str:
    """An account's or balance's ledger by its chart name, else its number."""
    return answer.get("ledger_name") or str(answer["ledger"])


def keys_table(keys: Sequence[dict[str, Any]], title: str | None = None) -> Table:
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
            _to_second(key["created_at"]),
            _to_second(key["revoked_at"]) or "[green]active[/green]",
        )
    return table


def account_table(accounts: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    for column in ("name", "type", "owner", "ledger", "status"):
        table.add_column(column)
    for column in ("posted", "available", "held"):
        table.add_column(column, justify="right")
    for account in accounts:
        balance = account.get("balance") or {}
        table.add_row(
            account["id"],
            account.get("name") or "",
            account["account_type"],
            account.get("owner_id") or "",
            _ledger(account),
            account["status"],
            balance.get("posted", ""),
            balance.get("available", ""),
            balance.get("held", ""),
        )
    return table


def account_view(account: dict[str, Any], title: str) -> RenderableType:
    fields = dict(account)
    fields["ledger"] = _ledger(account)
    balance = account.get("balance") or {}
    for key in ("posted", "available", "pending", "held"):
        if key in balance:
            fields[key] = balance[key]
    keys = ["id", "account_type", "owner_id", "name", "ledger", "status", "code", "metadata"]
    keys += ["posted", "available", "pending", "held", "created_at"]
    fields["created_at"] = _to_second(account.get("created_at"))
    return fields_table(fields, title, keys)


def balance_table(balances: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="balances")
    table.add_column("account", no_wrap=True)
    table.add_column("name")
    table.add_column("ledger")
    table.add_column("side")
    for column in ("posted", "available", "pending", "held"):
        table.add_column(column, justify="right")
    for b in balances:
        table.add_row(
            b["account_id"],
            b.get("account_name") or "",
            _ledger(b),
            b["normal_side"],
            b["posted"],
            b["available"],
            b["pending"],
            b["held"],
        )
    return table


def results_table(results: Sequence[dict[str, Any]], title: str) -> Table:
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


def fields_table(data: dict[str, Any], title: str, keys: Sequence[str] | None = None) -> Table:
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


def transfer_view(
    transfer: dict[str, Any], names: Mapping[str, str] | None = None
) -> RenderableType:
    """A transfer and its audit history; `names` (account id -> name) are shown beside the
    account ids they name."""
    shown = dict(transfer)
    for side in ("debit_account_id", "credit_account_id"):
        name = (names or {}).get(transfer[side])
        if name:
            shown[side] = f"{transfer[side]} ({name})"
    summary = fields_table(
        shown,
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
            "captured_amount",
            "released_amount",
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


def rates_table(rates: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="current exchange rates")
    for column in ("from", "to", "rate", "valid from", "valid until", "source", "set by"):
        table.add_column(column)
    for rate in rates:
        table.add_row(
            rate["source_ledger_name"],
            rate["target_ledger_name"],
            rate["rate"],
            _to_second(rate["valid_from"]),
            _to_second(rate.get("valid_until")),
            rate["source"],
            rate.get("set_by") or "",
        )
    return table


# -- payment flows --------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _engine_time(timestamp: str | None) -> str:
    """An engine timestamp (ns since the Unix epoch, as text) as ISO 8601 UTC to the
    millisecond; none is blank."""
    if not timestamp:
        return ""
    moment = _EPOCH + timedelta(microseconds=int(timestamp) // 1000)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _named(value: Any, names: Mapping[str, str]) -> str:
    """A value for a table: an account id with its name beside it where there is one."""
    text = value if isinstance(value, str) else json.dumps(value)
    name = names.get(text)
    return f"{text} ({name})" if name else text


def priced_view(
    data: Mapping[str, Any],
    title: str,
    names: Mapping[str, str] | None = None,
    *,
    units: Mapping[str, str] | None = None,
) -> Table:
    """An answer's fields for people: amounts (`units`: field -> ledger name) with their ledger,
    account ids with their names, times in ISO 8601; the ``_minor`` twins and the ledgers'
    numbers, which ``--json`` keeps, are left out."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if value in (None, "", [], {}) or key.endswith("_minor"):
            continue
        if isinstance(value, int) and f"{key}_name" in data:
            continue  # the ledger's number: its name is shown instead
        label = key.removesuffix("_name") if key.endswith("ledger_name") else key
        text = _named(value, names or {})
        if key.endswith("_at"):
            text = f"{_to_second(text)}Z"
        unit = (units or {}).get(key)
        table.add_row(label, f"{text} {unit}" if unit else text)
    return table


def flow_view(result: Mapping[str, Any], names: Mapping[str, str] | None = None) -> Group:
    """A flow's outcome: what moved (in the ledger's units, accounts by name and id), then the
    engine's answer for each of its transfers, with the engine's time."""
    book = result["ledger_name"]
    details = dict(result["details"])
    flow = str(result["flow"]).replace("_", " ")
    title = f"{flow}: {result['amount']} {book}"
    if result.get("replayed"):
        title += " (replayed: nothing moved again)"
    summary = {"payment_id": result["payment_id"], "event_id": result["event_id"], **details}
    units = {
        key: details.get("target_ledger_name", book) if key.startswith("target_") else book
        for key in details
        if f"{key}_minor" in details
    }
    legs = Table(title="transfers")
    for column in ("transfer", "status", "ok", "time"):
        legs.add_column(column, no_wrap=column in ("transfer", "time"))
    for leg in result["transfers"]:
        style = "green" if leg.get("ok") else "red"
        legs.add_row(
            leg["id"],
            Text(str(leg["status"]), style=style),
            "yes" if leg.get("ok") else "no",
            _engine_time(leg.get("timestamp")),
        )
    return Group(priced_view(summary, title, names, units=units), legs)


# -- an account over time -------------------------------------------------------------------------


def _to_milli(time: str | None) -> str:
    """An ISO 8601 UTC time cut to the millisecond for a table (the JSON keeps nanoseconds)."""
    return f"{time[:23]}Z".replace("T", " ") if time else ""


def _party(counterparty: dict[str, Any] | None, account_id: str | None = None) -> str:
    """The other side of a transfer for people: its name beside its id, when the key may see
    its name."""
    if counterparty is None:
        return account_id or ""
    name = counterparty.get("name")
    return f"{name} ({counterparty['id']})" if name else str(counterparty["id"])


def _next_page(table: Table, cursor: str | None) -> RenderableType:
    if cursor is None:
        return table
    return Group(table, Text(f"more: --cursor {cursor}", style="dim"))


def history_table(history: dict[str, Any]) -> RenderableType:
    table = Table(title=f"balance history of {history['account_id']} ({_ledger(history)})")
    for column in ("time", "kind", "transfer", "side", "counterparty"):
        table.add_column(column, no_wrap=column in ("time", "transfer"))
    for column in ("amount", "posted", "available", "held"):
        table.add_column(column, justify="right")
    for point in history["points"]:
        table.add_row(
            _to_milli(point["time"]),
            point["kind"],
            point.get("transfer_id") or "",
            point.get("direction") or "",
            _party(point.get("counterparty"), point.get("counterparty_id")),
            point.get("amount") or "",
            point["posted"],
            point["available"],
            point["held"],
        )
    return _next_page(table, history.get("next_cursor"))


def as_of_table(found: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="balances as of")
    for column in ("account", "ledger", "as of", "set by"):
        table.add_column(column, no_wrap=column == "account")
    for column in ("posted", "available", "pending", "held"):
        table.add_column(column, justify="right")
    for entry in found:
        balance = entry.get("balance")
        if balance is None:
            table.add_row(
                entry["account_id"],
                _ledger(entry),
                _to_milli(entry["as_of_time"]),
                Text(f"not opened yet (opened {_to_milli(entry['opened_at_time'])})", "yellow"),
                "",
                "",
                "",
                "",
            )
            continue
        set_by = balance.get("transfer_id") or "opening"
        table.add_row(
            entry["account_id"],
            _ledger(entry),
            _to_milli(entry["as_of_time"]),
            f"{set_by} at {_to_milli(balance['time'])}",
            balance["posted"],
            balance["available"],
            balance["pending"],
            balance["held"],
        )
    return table


def activity_table(activity: dict[str, Any]) -> RenderableType:
    table = Table(title=f"activity of {activity['account_id']} ({_ledger(activity)})")
    for column in ("time", "kind", "transfer", "side", "counterparty", "flow", "status"):
        table.add_column(column, no_wrap=column in ("time", "transfer"))
    table.add_column("amount", justify="right")
    table.add_column("captured", justify="right")
    table.add_column("released", justify="right")
    table.add_column("description")
    for entry in activity["entries"]:
        flow = entry.get("flow") or ""
        if flow and entry.get("leg") and entry["leg"] != flow:
            flow = f"{flow}/{entry['leg']}"
        table.add_row(
            _to_milli(entry["time"]),
            entry["kind"],
            entry["transfer_id"],
            entry["direction"],
            _party(entry.get("counterparty")),
            flow,
            entry.get("status") or "",
            entry["amount"],
            entry.get("captured_amount") or "",
            entry.get("released_amount") or "",
            entry.get("description") or "",
        )
    return _next_page(table, activity.get("next_cursor"))


def statement_view(statement: dict[str, Any]) -> RenderableType:
    name = statement.get("account_name") or statement["account_id"]
    title = (
        f"statement of {name} ({_ledger(statement)}), "
        f"{_to_milli(statement['start_time'])} to {_to_milli(statement['end_time'])}"
    )
    table = Table(title=title)
    for column in ("time", "kind", "transfer", "counterparty", "description"):
        table.add_column(column, no_wrap=column in ("time", "transfer"))
    for column in ("change", "balance"):
        table.add_column(column, justify="right")
    table.add_row("", "opening", "", "", "", "", statement["opening"]["posted"], style="bold")
    for line in statement["lines"]:
        table.add_row(
            _to_milli(line["time"]),
            line["kind"],
            line["transfer_id"],
            _party(line.get("counterparty")),
            line.get("description") or "",
            line["change"],
            line["balance"],
        )
    table.add_row("", "closing", "", "", "", "", statement["closing"]["posted"], style="bold")
    totals = Text(
        f"in {statement['total_in']}, out {statement['total_out']}, "
        f"{len(statement['lines'])} line(s)",
        style="dim",
    )
    return Group(table, totals)
