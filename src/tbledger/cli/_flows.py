"""The payment flows on the command line, through a running service's flow routes.

``deposit``, ``withdraw``, ``pay``, ``refund`` (and ``refundable``), ``settle`` and
``reverse-settlement``, ``exchange`` and ``quote``, the ``escrow lock|release|void``,
``anchor authorize|fulfil|release|status`` and ``liquidity fund|show`` groups: each makes one
call of `tbledger.client` (``/v1/flows/...``) and renders the answer, so the service prices,
authorizes and moves everything and these commands hold no ledger rules (``--url`` /
``TBLEDGER_API_URL``, ``--api-key`` / ``TBLEDGER_API_KEY``).

They read their arguments as the other money commands do (`_service`): an account is its id or
its unique name; an amount is decimal text in the ledger's units, or a whole number of minor
units with ``--minor``, typed here before anything is sent (`_options.amount_of`: the client
takes a Decimal or an int, never text); a ledger left out is the account's own.
``--idempotency-key`` makes a retry replay the first outcome instead of moving money twice (a
settlement reversal needs none: the settlement itself makes it happen at most once). A refusal
prints the service's error (an error object on stdout with ``--json``) and exits with status 1.
For people, the answer is a table in the ledger's units with accounts' names beside their ids and
each transfer's engine time in ISO 8601 UTC; ``--json`` prints the answer as the service sent it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated

import typer

from tbledger.cli._options import (
    DEFAULT_API_URL,
    AmountArg,
    ApiKeyOpt,
    JsonFlag,
    MinorFlag,
    UrlOpt,
    amount_checked,
    amount_of,
)
from tbledger.cli._output import flow_view, output_of, priced_view
from tbledger.cli._service import (
    AccountArg,
    account_id_of,
    account_names,
    ledger_of,
    remote_client,
)
from tbledger.client import LedgerClient, Model

__all__ = [
    "anchor_app",
    "deposit",
    "escrow_app",
    "exchange",
    "liquidity_app",
    "pay",
    "quote",
    "refund",
    "refundable",
    "reverse_settlement",
    "settle",
    "withdraw",
]

escrow_app = typer.Typer(
    help="Escrow: lock a payer's funds under a contract, then release or void them.",
    no_args_is_help=True,
)
anchor_app = typer.Typer(
    help="Anchors: hold a user's funds against an obligation, then fulfil or release them "
    "(admin key).",
    no_args_is_help=True,
)
liquidity_app = typer.Typer(
    help="The platform's liquidity, which exchanges pay out of (admin key).",
    no_args_is_help=True,
)

# The details' fields that name accounts: their names are shown beside them.
_ACCOUNT_FIELDS = frozenset(
    {
        "account_id",
        "escrow_account_id",
        "liquidity_account_id",
        "merchant_id",
        "payer_id",
        "refundable_account_id",
        "source_account_id",
        "target_account_id",
        "user_id",
    }
)

LedgerOpt = Annotated[
    str | None,
    typer.Option(help="The ledger, USD or 1 (default: the account's).", show_default=False),
]
PartOpt = Annotated[
    str | None,
    typer.Option(
        "--amount",
        help="Only this much, in the ledger's units (default: all of it).",
        callback=amount_checked,
        show_default=False,
    ),
]
EventOpt = Annotated[
    str | None,
    typer.Option("--event-id", help="An event id to record on every leg.", show_default=False),
]
PaymentOpt = Annotated[
    str | None,
    typer.Option("--payment-id", help="A payment id to record on every leg.", show_default=False),
]
FlowKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Retry safely: the same key replays the first outcome and moves nothing again.",
        show_default=False,
    ),
]
PayerOpt = Annotated[
    str | None,
    typer.Option(
        "--payer",
        help="The paying account (id or name), where several share the payment or contract id.",
        show_default=False,
    ),
]
HoldArg = Annotated[str, typer.Argument(help="The authorization's hold id.")]


def _part(amount: str | None, minor: bool) -> int | Decimal | None:
    """An optional amount as the client takes it (None: all of it)."""
    return None if amount is None else amount_of(amount, minor=minor)


def _optional_account(remote: LedgerClient, ref: str | None) -> str | None:
    return None if ref is None else account_id_of(remote, ref)


def _flow(
    ctx: typer.Context,
    json_output: bool,
    url: str,
    api_key: str | None,
    call: Callable[[LedgerClient], Model],
) -> None:
    """Run one flow call and show its outcome, with the names of the accounts it touched."""
    out = output_of(ctx, json_output)
    with remote_client(url, api_key, out) as remote:
        result = call(remote).to_json()
        names: Mapping[str, str] = {}
        if not out.json:
            ids = [v for k, v in result["details"].items() if k in _ACCOUNT_FIELDS and v]
            names = account_names(remote, ids)
    out.result(result, lambda: flow_view(result, names))


def _read(
    ctx: typer.Context,
    json_output: bool,
    url: str,
    api_key: str | None,
    call: Callable[[LedgerClient], Model],
    title: str,
    units: Mapping[str, str],
) -> None:
    """Run one read of a flow's state and show it; `units` maps an amount field to the answer's
    field that names its ledger."""
    out = output_of(ctx, json_output)
    with remote_client(url, api_key, out) as remote:
        found = call(remote).to_json()
        names: Mapping[str, str] = {}
        if not out.json:
            names = account_names(remote, [v for k, v in found.items() if k in _ACCOUNT_FIELDS])
    ledgers = {field: str(found[ledger]) for field, ledger in units.items()}
    out.result(found, lambda: priced_view(found, title, names, units=ledgers))


# -- money in and out -----------------------------------------------------------------------------


def deposit(
    ctx: typer.Context,
    account: AccountArg,
    amount: AmountArg,
    ledger: LedgerOpt = None,
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Money in from the outside world: the ledger's treasury pays AMOUNT to ACCOUNT (admin key)."""
    value = amount_of(amount, minor=minor)

    def call(remote: LedgerClient) -> Model:
        account_id = account_id_of(remote, account)
        return remote.deposit(
            account_id=account_id,
            amount=value,
            ledger=ledger or ledger_of(remote, account_id),
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        )

    _flow(ctx, json_output, url, api_key, call)


def withdraw(
    ctx: typer.Context,
    account: AccountArg,
    amount: AmountArg,
    ledger: LedgerOpt = None,
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Money out to the outside world: ACCOUNT pays AMOUNT back to the treasury (admin key)."""
    value = amount_of(amount, minor=minor)

    def call(remote: LedgerClient) -> Model:
        account_id = account_id_of(remote, account)
        return remote.withdraw(
            account_id=account_id,
            amount=value,
            ledger=ledger or ledger_of(remote, account_id),
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        )

    _flow(ctx, json_output, url, api_key, call)


@liquidity_app.command("fund")
def liquidity_fund(
    ctx: typer.Context,
    amount: AmountArg,
    ledger: Annotated[str, typer.Option(help="The ledger to fund (EUR or its number).")],
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Fund the platform's liquidity on a ledger with AMOUNT, which exchanges pay out of."""
    value = amount_of(amount, minor=minor)
    _flow(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.fund_liquidity(
            amount=value,
            ledger=ledger,
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        ),
    )


@liquidity_app.command("show")
def liquidity_show(
    ctx: typer.Context,
    ledger: Annotated[str, typer.Argument(help="The ledger (EUR or its number).")],
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """What exchanges can pay out on a ledger now."""
    _read(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.liquidity(ledger),
        "liquidity",
        {"available": "ledger_name"},
    )


# -- payments and refunds -------------------------------------------------------------------------


def pay(
    ctx: typer.Context,
    payer: Annotated[str, typer.Argument(help="The paying account's id or unique name.")],
    merchant: Annotated[str, typer.Argument(help="The merchant account's id or unique name.")],
    amount: AmountArg,
    ledger: Annotated[
        str | None,
        typer.Option(help="The ledger, USD or 1 (default: the payer's).", show_default=False),
    ] = None,
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: Annotated[
        str | None,
        typer.Option(
            "--payment-id",
            help="The id refunds name (default: derived from the idempotency key).",
            show_default=False,
        ),
    ] = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """PAYER pays MERCHANT AMOUNT, charged the fee of the merchant's schedule.

    An owner key pays from its own accounts, to any merchant."""
    value = amount_of(amount, minor=minor)

    def call(remote: LedgerClient) -> Model:
        payer_id = account_id_of(remote, payer)
        return remote.pay(
            payer_id=payer_id,
            merchant_id=account_id_of(remote, merchant),
            amount=value,
            ledger=ledger or ledger_of(remote, payer_id),
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        )

    _flow(ctx, json_output, url, api_key, call)


PaymentArg = Annotated[str, typer.Argument(help="The payment's id (its --payment-id).")]


def refund(
    ctx: typer.Context,
    payment_id: PaymentArg,
    amount: PartOpt = None,
    minor: MinorFlag = False,
    payer: PayerOpt = None,
    event_id: EventOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Refund a payment from the merchant back to the payer: all that is left, or --amount.

    An owner key refunds payments its own merchant accounts received."""
    value = _part(amount, minor)
    _flow(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.refund(
            payment_id=payment_id,
            payer_id=_optional_account(remote, payer),
            amount=value,
            event_id=event_id,
            idempotency_key=idempotency_key,
        ),
    )


def refundable(
    ctx: typer.Context,
    payment_id: PaymentArg,
    payer: PayerOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """What is left to refund of a payment."""
    _read(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.refundable(payment_id, payer_id=_optional_account(remote, payer)),
        f"refundable of {payment_id}",
        {"refundable": "ledger_name"},
    )


# -- merchant settlement --------------------------------------------------------------------------


def settle(
    ctx: typer.Context,
    merchant: Annotated[str, typer.Argument(help="The merchant account's id or unique name.")],
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount",
            help="Only this much (default: the merchant's whole available balance).",
            callback=amount_checked,
            show_default=False,
        ),
    ] = None,
    ledger: LedgerOpt = None,
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Settle a merchant's balance out to the treasury, all of it or --amount (admin key)."""
    value = _part(amount, minor)

    def call(remote: LedgerClient) -> Model:
        merchant_id = account_id_of(remote, merchant)
        return remote.settle(
            merchant_id=merchant_id,
            ledger=ledger or ledger_of(remote, merchant_id),
            amount=value,
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        )

    _flow(ctx, json_output, url, api_key, call)


def reverse_settlement(
    ctx: typer.Context,
    settlement_id: Annotated[str, typer.Argument(help="The settlement's id (its settlement_id).")],
    event_id: EventOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Give a settlement back to the merchant (admin key).

    At most once: a second call replays the first, so no idempotency key is needed."""
    _flow(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.reverse_settlement(settlement_id, event_id=event_id),
    )


# -- exchange -------------------------------------------------------------------------------------


def quote(
    ctx: typer.Context,
    source_ledger: Annotated[str, typer.Argument(help="The ledger sold (USD).")],
    target_ledger: Annotated[str, typer.Argument(help="The ledger bought (EUR).")],
    amount: Annotated[
        str,
        typer.Argument(
            help="What would be debited, in the source ledger's units (10.00).",
            callback=amount_checked,
        ),
    ],
    minor: MinorFlag = False,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """A quote: the current rate fixed for a pair and amount, for a short while.

    `exchange --quote` spends it, once; only the key's owner may."""
    value = amount_of(amount, minor=minor)
    _read(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.quote(
            source_ledger=source_ledger, target_ledger=target_ledger, amount=value
        ),
        "quote",
        {"amount": "source_ledger_name", "target_amount": "target_ledger_name"},
    )


def exchange(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The account debited (id or unique name).")],
    target: Annotated[
        str, typer.Argument(help="The account credited, on another ledger (id or unique name).")
    ],
    amount: Annotated[
        str,
        typer.Argument(
            help="Debited from SOURCE, in its ledger's units (10.00).", callback=amount_checked
        ),
    ],
    quote_id: Annotated[
        str | None,
        typer.Option(
            "--quote",
            help="A quote's id: its rate, once (default: the current rate).",
            show_default=False,
        ),
    ] = None,
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Exchange AMOUNT from SOURCE into TARGET, at a quote's rate or the current one.

    Paid out of the platform's liquidity, rounded down. The ledgers are the accounts' own; an
    owner key exchanges between its own accounts."""
    value = amount_of(amount, minor=minor)

    def call(remote: LedgerClient) -> Model:
        source_id, target_id = account_id_of(remote, source), account_id_of(remote, target)
        return remote.exchange(
            source_account_id=source_id,
            target_account_id=target_id,
            amount=value,
            source_ledger=ledger_of(remote, source_id),
            target_ledger=ledger_of(remote, target_id),
            quote_id=quote_id,
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        )

    _flow(ctx, json_output, url, api_key, call)


# -- escrow ---------------------------------------------------------------------------------------

ContractArg = Annotated[str, typer.Argument(help="The contract's id, chosen at lock.")]


@escrow_app.command("lock")
def escrow_lock(
    ctx: typer.Context,
    contract_id: ContractArg,
    payer: Annotated[str, typer.Argument(help="The paying account's id or unique name.")],
    amount: AmountArg,
    ledger: LedgerOpt = None,
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Lock AMOUNT of PAYER's funds in escrow under CONTRACT_ID (an owner key: its own)."""
    value = amount_of(amount, minor=minor)

    def call(remote: LedgerClient) -> Model:
        payer_id = account_id_of(remote, payer)
        return remote.escrow_lock(
            contract_id=contract_id,
            payer_id=payer_id,
            amount=value,
            ledger=ledger or ledger_of(remote, payer_id),
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        )

    _flow(ctx, json_output, url, api_key, call)


@escrow_app.command("release")
def escrow_release(
    ctx: typer.Context,
    contract_id: ContractArg,
    merchant: Annotated[str, typer.Argument(help="The merchant paid: its id or unique name.")],
    amount: PartOpt = None,
    minor: MinorFlag = False,
    payer: PayerOpt = None,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Release escrowed funds to MERCHANT, all that is locked or --amount (admin key)."""
    value = _part(amount, minor)
    _flow(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.escrow_release(
            contract_id=contract_id,
            merchant_id=account_id_of(remote, merchant),
            payer_id=_optional_account(remote, payer),
            amount=value,
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        ),
    )


@escrow_app.command("void")
def escrow_void(
    ctx: typer.Context,
    contract_id: ContractArg,
    amount: PartOpt = None,
    minor: MinorFlag = False,
    payer: PayerOpt = None,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Give escrowed funds back to the payer, all that is locked or --amount (admin key)."""
    value = _part(amount, minor)
    _flow(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.escrow_void(
            contract_id=contract_id,
            payer_id=_optional_account(remote, payer),
            amount=value,
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        ),
    )


# -- anchors --------------------------------------------------------------------------------------


@anchor_app.command("authorize")
def anchor_authorize(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user account held: its id or unique name.")],
    amount: Annotated[
        str,
        typer.Argument(
            help="Held, in the units of the ledger the obligation settles in (30.00).",
            callback=amount_checked,
        ),
    ],
    obligation: Annotated[
        str,
        typer.Option(help="The obligation ledger: its name, number or short name (grocery)."),
    ],
    timeout: Annotated[
        int, typer.Option(min=1, help="Seconds until the authorization expires by itself.")
    ],
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    payment_id: PaymentOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Hold AMOUNT of USER's funds against an obligation until fulfilled, released or expired."""
    value = amount_of(amount, minor=minor)
    _flow(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.authorize_anchor(
            user_id=account_id_of(remote, user),
            amount=value,
            obligation=obligation,
            timeout_s=timeout,
            event_id=event_id,
            payment_id=payment_id,
            idempotency_key=idempotency_key,
        ),
    )


# "fulfill", the API's spelling, is accepted too.
@anchor_app.command("fulfill", hidden=True)
@anchor_app.command("fulfil")
def anchor_fulfil(
    ctx: typer.Context,
    hold_id: HoldArg,
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount",
            help="Fulfil only this much; the rest is released (default: all of it).",
            callback=amount_checked,
            show_default=False,
        ),
    ] = None,
    minor: MinorFlag = False,
    event_id: EventOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Fulfil an authorization: the held funds pay the obligation, all of them or --amount."""
    value = _part(amount, minor)
    _flow(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.fulfill_anchor(
            hold_id, amount=value, event_id=event_id, idempotency_key=idempotency_key
        ),
    )


@anchor_app.command("release")
def anchor_release(
    ctx: typer.Context,
    hold_id: HoldArg,
    event_id: EventOpt = None,
    idempotency_key: FlowKeyOpt = None,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Release an authorization: the user's held funds are available again."""
    _flow(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.release_anchor(
            hold_id, event_id=event_id, idempotency_key=idempotency_key
        ),
    )


@anchor_app.command("status")
def anchor_status(
    ctx: typer.Context,
    hold_id: HoldArg,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """An authorization's state: authorized, fulfilled, released or expired."""
    _read(
        ctx,
        json_output,
        url,
        api_key,
        lambda remote: remote.anchor_status(hold_id),
        f"anchor authorization {hold_id}",
        {"amount": "ledger_name"},
    )
