"""The commands that move money and read the ledger, through a running service's HTTP API.

``accounts``, ``balance``, ``transfer``, ``hold``, ``post``, ``void``, ``audit``, ``recover``,
``rates`` and ``fees`` each make one or a few calls of `tbledger.client` and render the answer;
the service decides and authorizes everything (``--url`` / ``TBLEDGER_API_URL``, ``--api-key`` /
``TBLEDGER_API_KEY``), so these commands hold no ledger rules. An error answer prints (an error
object on stdout with ``--json``) and exits with status 1.

Wherever a command takes an account, it takes its id or its unique name: text spelled as an id
(``0x`` and hex digits, or decimal digits) is an id, anything else a name, looked up through the
service (``GET /v1/accounts/by-name/{name}``), which scopes it as it scopes the id (an owner key
names its own owner's accounts only). Tables show an account's name beside its id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.table import Table

from tbledger.cli._options import (
    DEFAULT_API_URL,
    AmountArg,
    ApiKeyOpt,
    IdemOpt,
    JsonFlag,
    MinorFlag,
    UrlOpt,
    amount_checked,
    amount_of,
)
from tbledger.cli._output import (
    Output,
    account_table,
    account_view,
    as_of_table,
    balance_table,
    fields_table,
    output_of,
    rates_table,
    results_table,
    transfer_view,
)
from tbledger.client import LedgerClient, TransferSpec, answer_of
from tbledger.errors import AccountNotFoundError, HttpApiError, InvalidIdError, TbledgerError
from tbledger.ids import parse_id
from tbledger.limits import CLIENT_TIMEOUT_S, HTTP_PAGE_LIMIT_MAX, LISTING_PAGE_ROWS_DEFAULT

__all__ = [
    "AccountArg",
    "account_id_of",
    "account_names",
    "accounts_app",
    "audit",
    "balance",
    "fees_app",
    "hold",
    "ledger_of",
    "post",
    "rates_app",
    "recover",
    "remote_client",
    "transfer",
    "void",
]

HTTP_TIMEOUT_S = CLIENT_TIMEOUT_S

accounts_app = typer.Typer(help="Accounts, through a running service.", no_args_is_help=True)
rates_app = typer.Typer(
    help="The operator's exchange rates, through a running service.", no_args_is_help=True
)
fees_app = typer.Typer(
    help="Merchants' fee schedules, through a running service.", no_args_is_help=True
)


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


def _per_item(value: str | None, index: int, count: int) -> str | None:
    """The name or idempotency key of item `index` of the `count` one command sends: suffixed -N
    when there are several, so names stay unique and a rerun with the same key replays each."""
    if value is None or count == 1:
        return value
    return f"{value}-{index + 1}"


def _is_id(ref: str) -> bool:
    try:
        parse_id(ref)
    except InvalidIdError:
        return False
    return True


def _account_id(remote: LedgerClient, ref: str) -> str:
    """The id of the account `ref` names: `ref` itself when it is spelled as an id, else the id
    of the account with that name (the service's 404 when there is none the key may see)."""
    return ref if _is_id(ref) else remote.account_by_name(ref).id


def _names(remote: LedgerClient, ids: list[str]) -> dict[str, str]:
    """The names of those of `ids` the key may see that have one, for showing beside them."""
    names = {}
    for account_id in dict.fromkeys(ids):
        try:
            name = remote.get_account(account_id).name
        except AccountNotFoundError:
            continue  # another owner's account (or none): shown by id alone
        if name:
            names[account_id] = name
    return names


def _ledger_of(remote: LedgerClient, account_id: str) -> str:
    """The chart name (else the number) of the ledger an account is on."""
    account = remote.get_account(account_id)
    return str(account.ledger_name or account.ledger)


# The other commands that reach the service (`_history`, `_flows`) do it the same way: one client
# and error path, and one reading of an account given by id or by name.
remote_client = _remote
account_id_of = _account_id
account_names = _names
ledger_of = _ledger_of

AccountArg = Annotated[str, typer.Argument(help="The account's id or unique name.")]


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
    out = output_of(ctx, json_output)
    created: list[dict[str, Any]] = []
    with _remote(url, api_key, out) as remote, out.progress(count) as progress:
        task = progress.add_task("opening accounts", total=count)
        for index in range(count):
            opened = remote.create_account(
                ledger=ledger,
                account_type=account_type,
                owner_id=owner,
                name=_per_item(name, index, count),
                idempotency_key=_per_item(idempotency_key, index, count),
            )
            created.append(opened.to_json())
            progress.advance(task)
    if count == 1:
        out.result(created[0], lambda: account_view(created[0], "account opened"))
    else:
        out.result(
            {"accounts": created},
            lambda: account_table(created, title=f"{count} accounts opened"),
        )


@accounts_app.command("show")
def accounts_show(
    ctx: typer.Context,
    account: AccountArg,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """An account with its balance, by id or by name."""
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        found = remote.get_account(account) if _is_id(account) else remote.account_by_name(account)
        shown = found.to_json()
    out.result(shown, lambda: account_view(shown, "account"))


@accounts_app.command("list")
def accounts_list(
    ctx: typer.Context,
    owner: Annotated[
        str | None,
        typer.Option(
            help="Only this owner's accounts (an owner key: its own).", show_default=False
        ),
    ] = None,
    account_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="Only this type: user, merchant, treasury, escrow, fee_pool, anchor, "
            "system_buffer or control.",
            show_default=False,
        ),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(help="Only this ledger (USD or 1).", show_default=False),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only this status: active, frozen or closed.", show_default=False),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=HTTP_PAGE_LIMIT_MAX, help="At most this many (one page).")
    ] = LISTING_PAGE_ROWS_DEFAULT,
    cursor: Annotated[
        str | None,
        typer.Option(help="The next page: the last page's next_cursor.", show_default=False),
    ] = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Accounts with their balances, in id order, one page at a time (--cursor for the next).

    With an admin key every account, the platform's own (treasury, fee pool, liquidity) among
    them; with an owner key its own owner's."""
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        listing = remote.list_accounts(
            owner_id=owner,
            account_type=account_type,
            ledger=ledger,
            status=status,
            limit=limit,
            cursor=cursor,
        ).to_json()
    accounts = listing["accounts"]
    filters = {"owner": owner, "type": account_type, "ledger": ledger, "status": status}
    shown = ", ".join(f"{k} {v}" for k, v in filters.items() if v is not None)
    title = f"accounts ({shown})" if shown else "accounts"
    out.result(listing, lambda: account_table(accounts, title=title))
    if listing.get("next_cursor"):
        out.note(f"more: --cursor {listing['next_cursor']}")


def _status_command(
    action: str, account_ref: str, url: str, api_key: str | None, out: Output
) -> None:
    with _remote(url, api_key, out) as remote:
        change = {
            "freeze": remote.freeze_account,
            "unfreeze": remote.unfreeze_account,
            "close": remote.close_account,
        }[action]
        account = change(_account_id(remote, account_ref)).to_json()
    out.result(account, lambda: account_view(account, f"account {account['status']}"))


@accounts_app.command("freeze")
def accounts_freeze(
    ctx: typer.Context,
    account: AccountArg,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Freeze an account: every new transfer touching it is refused (admin key)."""
    _status_command("freeze", account, url, api_key, output_of(ctx, json_output))


@accounts_app.command("unfreeze")
def accounts_unfreeze(
    ctx: typer.Context,
    account: AccountArg,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Unfreeze a frozen account (admin key)."""
    _status_command("unfreeze", account, url, api_key, output_of(ctx, json_output))


@accounts_app.command("close")
def accounts_close(
    ctx: typer.Context,
    account: AccountArg,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Close an account for good; its balance goes to the ledger's control account (admin key)."""
    _status_command("close", account, url, api_key, output_of(ctx, json_output))


# -- balances and transfers -----------------------------------------------------------------------


def balance(
    ctx: typer.Context,
    accounts: Annotated[
        list[str], typer.Argument(help="One or more accounts, by id or unique name.")
    ],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="The balance at this time instead (engine ns or ISO 8601; UTC if no offset).",
            show_default=False,
        ),
    ] = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Balances: posted, available (holds deducted), pending and held (now, or --as-of)."""
    out = output_of(ctx, json_output)
    if as_of is not None:
        with _remote(url, api_key, out) as remote:
            ids = [_account_id(remote, ref) for ref in accounts]
            found = [remote.balance_as_of(a, as_of=as_of).to_json() for a in ids]
        at: Any = found[0] if len(found) == 1 else {"balances": found}
        out.result(at, lambda: as_of_table(found))
        return
    with _remote(url, api_key, out) as remote:
        account_ids = [_account_id(remote, ref) for ref in accounts]
        if len(account_ids) == 1:
            balances = [remote.get_balance(account_ids[0]).to_json()]
        else:
            balances = [b.to_json() for b in remote.get_balances(account_ids)]
    data: Any = balances[0] if len(balances) == 1 else {"balances": balances}
    out.result(data, lambda: balance_table(balances))


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
        amount=amount_of(amount, minor=minor),
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
DebitArg = Annotated[
    str, typer.Argument(help="The account money leaves (debit): its id or unique name.")
]
CreditArg = Annotated[
    str, typer.Argument(help="The account money goes to (credit): its id or unique name.")
]


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
    out = output_of(ctx, json_output)
    if transfer_id is not None and repeat > 1:
        raise typer.BadParameter("--id names one transfer; it cannot be used with --repeat")
    results: list[dict[str, Any]] = []
    refused: list[HttpApiError] = []
    with _remote(url, api_key, out) as remote:
        debit, credit = _account_id(remote, debit), _account_id(remote, credit)
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
            out.result(result, lambda: results_table([result], "transfer"))
            return
        with out.progress(repeat) as progress:
            task = progress.add_task("transferring", total=repeat)
            for index in range(repeat):
                key = _per_item(idempotency_key, index, repeat)
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
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        debit, credit = _account_id(remote, debit), _account_id(remote, credit)
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
    out.result(result, lambda: results_table([result], "hold"))


PendingArg = Annotated[str, typer.Argument(help="The hold's (pending transfer's) id.")]


def post(
    ctx: typer.Context,
    pending_id: PendingArg,
    amount: Annotated[
        str | None,
        typer.Option(
            help="Post only this much (the rest is released) (default: all).",
            callback=amount_checked,
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
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        result = remote.post_pending_transfer(
            pending_id,
            amount=None if amount is None else amount_of(amount, minor=minor),
            event_id=event_id or None,
            payment_id=payment_id or None,
            idempotency_key=idempotency_key,
        ).to_json()
    out.result(result, lambda: results_table([result], "posted"))


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
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        result = remote.void_pending_transfer(
            pending_id,
            event_id=event_id or None,
            payment_id=payment_id or None,
            idempotency_key=idempotency_key,
        ).to_json()
    out.result(result, lambda: results_table([result], "voided"))


def audit(
    ctx: typer.Context,
    transfer_id: Annotated[str, typer.Argument(help="The transfer's id.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """A transfer as the engine holds it, with its audit history."""
    out = output_of(ctx, json_output)
    names: dict[str, str] = {}
    with _remote(url, api_key, out) as remote:
        found = remote.get_transfer(transfer_id).to_json()
        if not out.json:
            names = _names(remote, [found["debit_account_id"], found["credit_account_id"]])
    out.result(found, lambda: transfer_view(found, names))


def recover(
    ctx: typer.Context,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Resolve every transfer intent without an outcome now (admin key)."""
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        report = remote.recover().to_json()
    out.result(report, lambda: fields_table(report, "recovery"))


# -- prices ---------------------------------------------------------------------------------------


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
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        stored = remote.set_rate(
            source_ledger=source_ledger,
            target_ledger=target_ledger,
            rate=rate,
            source=source,
            valid_from=valid_from,
            valid_until=valid_until,
        ).to_json()
    out.result(stored, lambda: rates_table([stored]))


@rates_app.command("list")
def rates_list(
    ctx: typer.Context,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """The current rate of every pair that has one."""
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        listing = {"rates": [r.to_json() for r in remote.rates()]}
    out.result(listing, lambda: rates_table(listing["rates"]))


@fees_app.command("set")
def fees_set(
    ctx: typer.Context,
    merchant: Annotated[str, typer.Argument(help="The merchant account's id or unique name.")],
    bps: Annotated[
        int, typer.Option(min=0, max=10_000, help="Basis points of the amount (100 = 1%).")
    ] = 0,
    fixed: Annotated[
        str,
        typer.Option(help="A fixed part, in the merchant ledger's units.", callback=amount_checked),
    ] = "0",
    payer: Annotated[
        str, typer.Option(help="Who pays: payer (on top) or merchant (out of the amount).")
    ] = "payer",
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Set a merchant's fee schedule; payments to it are charged by it from now on (admin key)."""
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        stored = remote.set_fee_schedule(
            _account_id(remote, merchant),
            fee_bps=bps,
            fee_fixed=amount_of(fixed, minor=False),
            fee_payer=payer,
        ).to_json()
    out.result(stored, lambda: fields_table(stored, "fee schedule"))


@fees_app.command("show")
def fees_show(
    ctx: typer.Context,
    merchant: Annotated[str, typer.Argument(help="The merchant account's id or unique name.")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """What a payment to a merchant is charged: its schedule, or the platform default."""
    out = output_of(ctx, json_output)
    with _remote(url, api_key, out) as remote:
        shown = remote.fee_schedule(_account_id(remote, merchant)).to_json()
    out.result(shown, lambda: fields_table(shown, "fee schedule"))
