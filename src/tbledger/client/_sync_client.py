# Generated from _async_client.py by `python -m tbledger.tools.sync_client`: do not edit.
"""`LedgerClient`: every route of the HTTP API as one typed, blocking method.

This file is the source of the blocking `LedgerClient` too: ``_sync_client.py`` is generated
from it (``python -m tbledger.tools.sync_client``; a test checks that it is current), so that the
two clients never drift apart. Write nothing here that a plain removal of the async keywords
would not turn into the blocking twin.

Each method builds one request (path, query, JSON body with the caller's fields only, so that the
service's defaults apply) and reads one answer: the typed model on success, the library's
exception for an error (`tbledger.client._errors`). Ids are accepted as the API's strings or as
ints (u128, sent as ``0x`` hex). Amounts are read as the library reads them (`tbledger.flows`):
an ``int`` is minor units, a ``Decimal`` major units, and text or a float is refused with
`AmountError` before anything is sent (`tbledger.client._spec`); answers carry both spellings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from tbledger.client._errors import error_from_answer
from tbledger.client._history import (
    ActivityPage,
    BalanceAsOf,
    BalanceHistory,
    Statement,
    TimeArg,
    time_text,
)
from tbledger.client._models import (
    Account,
    AccountDetails,
    AccountPage,
    AnchorAuthorizationDetails,
    AnchorFulfillmentDetails,
    AnchorReleaseDetails,
    AnchorStatus,
    AuditEntry,
    Balance,
    BatchResult,
    EscrowLockDetails,
    EscrowReleaseDetails,
    EscrowVoidDetails,
    ExchangeDetails,
    FeeSchedule,
    FlowResult,
    Liquidity,
    LiquidityDetails,
    Liveness,
    Model,
    PaymentDetails,
    Quote,
    Rate,
    Readiness,
    RecoveryReport,
    Refundable,
    RefundDetails,
    SettlementDetails,
    SettlementReversalDetails,
    Transfer,
    TransferPage,
    TransferResult,
    Webhook,
    WebhookAttempt,
)
from tbledger.client._spec import Amount, TransferSpec, amount_fields, id_text, transfer_body
from tbledger.client._transport import Answer, HttpxTransport, StreamRefused, SyncTransport
from tbledger.limits import CLIENT_TIMEOUT_S

__all__ = ["LedgerClient"]

M = TypeVar("M", bound=Model)
Id = str | int
Params = Sequence[tuple[str, str]]


def _segment(value: Id) -> str:
    """An id or name as one path segment (a caller's text cannot reach another route)."""
    return quote(id_text(value) if isinstance(value, int) else value, safe="")


def _period(start: TimeArg | None, end: TimeArg | None) -> list[tuple[str, str]]:
    """The ``from`` and ``to`` of a query, where given."""
    params = [] if start is None else [("from", time_text(start))]
    return params + ([] if end is None else [("to", time_text(end))])


def _fields(**fields: object) -> dict[str, object]:
    """A body of the fields the caller gave: None means "the service's default"."""
    return {k: v for k, v in fields.items() if v is not None}


class LedgerClient:
    """The tbledger HTTP API, blocking. ``with LedgerClient(url, api_key=...) as c:``.

    `transport` replaces the default (httpx) with another `SyncTransport` (for the async client,
    `AiohttpTransport` where the client's own CPU matters); `url`, `api_key` and `timeout_s` are
    then the transport's business.
    """

    def __init__(
        self,
        url: str = "",
        *,
        api_key: str | None = None,
        timeout_s: float = CLIENT_TIMEOUT_S,
        transport: SyncTransport | None = None,
    ) -> None:
        if transport is None:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            transport = HttpxTransport(url, headers=headers, timeout_s=timeout_s)
        self.transport = transport

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # -- the one door -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Params = (),
        idempotency_key: str | None = None,
    ) -> Answer:
        """One request; its answer when it succeeded (2xx), else the library's exception."""
        headers: dict[str, str] = {}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        answer = self.transport.request(
            method, path, params=params, content=content, headers=headers
        )
        if 200 <= answer.status < 300:
            return answer
        raise error_from_answer(answer.status, answer.content, retry_after=answer.retry_after)

    def _call(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Params = (),
        idempotency_key: str | None = None,
    ) -> M:
        answer = self.request(
            method, path, body=body, params=params, idempotency_key=idempotency_key
        )
        return model.model_validate_json(answer.content)

    def send_encoded(self, route: Literal["transfer", "batch"], content: bytes) -> Answer:
        """POST a body already encoded as JSON to ``/v1/transfers`` (`route` ``"transfer"``) or
        ``/v1/transfers/batch`` and return the answer unread, whatever its status: for load
        generators, whose own CPU per request must stay far below the service's."""
        path = "/v1/transfers" if route == "transfer" else "/v1/transfers/batch"
        return self.transport.request(
            "POST", path, content=content, headers={"Content-Type": "application/json"}
        )

    # -- probes and operations --------------------------------------------------------------------

    def health(self) -> Liveness:
        """Liveness (``GET /healthz``): the process answers."""
        return self._call(Liveness, "GET", "/healthz")

    def ready(self) -> Readiness:
        """Readiness (``GET /readyz``): a 503 is an answer here, with ``ready`` false."""
        answer = self.transport.request("GET", "/readyz")
        if answer.status in (200, 503):
            return Readiness.model_validate_json(answer.content)
        raise error_from_answer(answer.status, answer.content, retry_after=answer.retry_after)

    def metrics(self) -> str:
        """Prometheus metrics, as text (admin key)."""
        answer = self.request("GET", "/metrics")
        return answer.content.decode()

    def recover(self) -> RecoveryReport:
        """Resolve every intent without an outcome now (admin key)."""
        return self._call(RecoveryReport, "POST", "/v1/admin/recover")

    def events(self, *, since: int = 0, follow: bool = False) -> Iterator[AuditEntry]:
        """The audit trail after seq `since`, as it is recorded (admin key); with `follow`, the
        stream stays open for new events until the caller stops iterating."""
        params = [("since", str(since)), ("follow", "true" if follow else "false")]
        try:
            for line in self.transport.stream_lines("/v1/events", params=params):
                if line.startswith("data:"):
                    yield AuditEntry.model_validate_json(line.removeprefix("data:").strip())
        except StreamRefused as refused:
            answer = refused.answer
            raise error_from_answer(
                answer.status, answer.content, retry_after=answer.retry_after
            ) from None

    # -- accounts ---------------------------------------------------------------------------------

    def create_account(
        self,
        *,
        ledger: str | int,
        account_type: str = "user",
        owner_id: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Account:
        """Open an account; `account_type` is user, merchant, treasury, escrow, fee_pool, anchor,
        system_buffer or control (owner keys: user or merchant, for their own owner)."""
        body = _fields(
            ledger=str(ledger),
            account_type=account_type,
            owner_id=owner_id,
            name=name,
            metadata=None if metadata is None else dict(metadata),
        )
        return self._call(
            Account, "POST", "/v1/accounts", body=body, idempotency_key=idempotency_key
        )

    def get_account(self, account_id: Id) -> Account:
        """An account with its balance; `AccountNotFoundError` when missing (or not visible)."""
        return self._call(Account, "GET", f"/v1/accounts/{_segment(account_id)}")

    def account_by_name(self, name: str) -> Account:
        """An account with its balance, by its unique name; `AccountNotFoundError` when there is
        none (or it is another owner's)."""
        return self._call(Account, "GET", f"/v1/accounts/by-name/{_segment(name)}")

    def list_accounts(
        self,
        *,
        owner_id: str | None = None,
        account_type: str | None = None,
        ledger: str | int | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AccountPage:
        """One page of accounts in id order, filtered by owner, type (user, treasury...),
        ledger (USD or 1) and status (active, frozen, closed), each optional; pass
        ``next_cursor`` as `cursor` for the next. An owner key lists its own owner's only."""
        filters = {
            "owner_id": owner_id,
            "account_type": account_type,
            "ledger": None if ledger is None else str(ledger),
            "status": status,
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        }
        params = [(name, value) for name, value in filters.items() if value is not None]
        return self._call(AccountPage, "GET", "/v1/accounts", params=params)

    def freeze_account(self, account_id: Id) -> Account:
        """Freeze an account: new transfers touching it are refused (admin key)."""
        return self._call(Account, "POST", f"/v1/accounts/{_segment(account_id)}/freeze")

    def unfreeze_account(self, account_id: Id) -> Account:
        """Unfreeze a frozen account (admin key)."""
        return self._call(Account, "POST", f"/v1/accounts/{_segment(account_id)}/unfreeze")

    def close_account(self, account_id: Id, *, sweep_to: Id | None = None) -> Account:
        """Close an account for good; its balance goes to `sweep_to` (default: the ledger's
        control account) (admin key)."""
        body = None if sweep_to is None else {"sweep_to": id_text(sweep_to)}
        return self._call(Account, "POST", f"/v1/accounts/{_segment(account_id)}/close", body=body)

    def get_balance(self, account_id: Id) -> Balance:
        """An account's balance."""
        return self._call(Balance, "GET", f"/v1/balances/{_segment(account_id)}")

    def get_balances(self, account_ids: Sequence[Id]) -> list[Balance]:
        """Several accounts' balances, in one request (at most 1000)."""
        params = [("account_id", id_text(i)) for i in account_ids]
        answer = self.request("GET", "/v1/balances", params=params)
        return [Balance.model_validate(b) for b in json.loads(answer.content)["balances"]]

    # -- transfers --------------------------------------------------------------------------------

    def create_transfer(
        self, transfer: TransferSpec, *, idempotency_key: str | None = None
    ) -> TransferResult:
        """Move money now; a refusal raises (`InsufficientBalanceError`, `AccountFrozenError`,
        `TransferFailedError`...)."""
        return self._call(
            TransferResult,
            "POST",
            "/v1/transfers",
            body=transfer_body(transfer),
            idempotency_key=idempotency_key,
        )

    def create_pending_transfer(
        self, transfer: TransferSpec, *, idempotency_key: str | None = None
    ) -> TransferResult:
        """Place a hold (``transfer.timeout_s``: seconds until it expires, 0 never)."""
        return self._call(
            TransferResult,
            "POST",
            "/v1/transfers/pending",
            body=transfer_body(transfer),
            idempotency_key=idempotency_key,
        )

    def post_pending_transfer(
        self,
        pending_id: Id,
        *,
        amount: Amount | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> TransferResult:
        """Post a hold, in full or `amount` of it (the rest is released)."""
        body = _fields(
            **amount_fields(amount),
            event_id=event_id,
            payment_id=payment_id,
            metadata=None if metadata is None else dict(metadata),
        )
        return self._call(
            TransferResult,
            "POST",
            f"/v1/transfers/{_segment(pending_id)}/post",
            body=body,
            idempotency_key=idempotency_key,
        )

    def void_pending_transfer(
        self,
        pending_id: Id,
        *,
        event_id: str | None = None,
        payment_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> TransferResult:
        """Release a hold."""
        body = _fields(
            event_id=event_id,
            payment_id=payment_id,
            metadata=None if metadata is None else dict(metadata),
        )
        return self._call(
            TransferResult,
            "POST",
            f"/v1/transfers/{_segment(pending_id)}/void",
            body=body,
            idempotency_key=idempotency_key,
        )

    def create_transfers(
        self,
        transfers: Sequence[TransferSpec],
        *,
        atomic: bool = False,
        pending: bool = False,
        idempotency_key: str | None = None,
    ) -> BatchResult:
        """Up to 8189 transfers in one engine request; refusals are results (``ok`` false), not
        exceptions. `atomic`: all or nothing; `pending`: every transfer a hold."""
        body = {
            "transfers": [transfer_body(t) for t in transfers],
            "atomic": atomic,
            "pending": pending,
        }
        return self._call(
            BatchResult,
            "POST",
            "/v1/transfers/batch",
            body=body,
            idempotency_key=idempotency_key,
        )

    def get_transfer(self, transfer_id: Id) -> Transfer:
        """A transfer from the engine with its audit history; `UnknownReferenceError` (code
        ``transfer_not_found``) when missing or not visible."""
        return self._call(Transfer, "GET", f"/v1/transfers/{_segment(transfer_id)}")

    def list_transfers(
        self,
        *,
        event_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TransferPage:
        """One page of the transfers recorded with an event id, or whose metadata has every
        key/value pair of `metadata` (string values, exactly), or both (at least one is
        needed)."""
        params = [] if event_id is None else [("event_id", event_id)]
        params += [(f"metadata[{key}]", value) for key, value in (metadata or {}).items()]
        params += [("limit", str(limit))] if limit is not None else []
        params += [("cursor", cursor)] if cursor is not None else []
        return self._call(TransferPage, "GET", "/v1/transfers", params=params)

    def transfers_by_metadata(
        self,
        metadata: Mapping[str, str],
        *,
        event_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TransferPage:
        """One page of the transfers whose metadata has every pair of `metadata` (as
        `list_transfers` with `metadata`)."""
        return self.list_transfers(event_id=event_id, metadata=metadata, limit=limit, cursor=cursor)

    def list_account_transfers(
        self,
        account_id: Id,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> TransferPage:
        """An account's transfers, one page (`reverse`: newest first)."""
        params = [("reverse", "true" if reverse else "false")]
        params += [("limit", str(limit))] if limit is not None else []
        params += [("cursor", cursor)] if cursor is not None else []
        path = f"/v1/accounts/{_segment(account_id)}/transfers"
        return self._call(TransferPage, "GET", path, params=params)

    # -- flows ------------------------------------------------------------------------------------

    def deposit(
        self,
        *,
        account_id: Id,
        amount: Amount,
        ledger: str | int,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[AccountDetails]:
        """Money in from the outside world: treasury -> account (admin key)."""
        body = _fields(
            account_id=id_text(account_id),
            **amount_fields(amount),
            ledger=str(ledger),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[AccountDetails],
            "POST",
            "/v1/flows/deposit",
            body=body,
            idempotency_key=idempotency_key,
        )

    def withdraw(
        self,
        *,
        account_id: Id,
        amount: Amount,
        ledger: str | int,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[AccountDetails]:
        """Money out to the outside world: account -> treasury (admin key)."""
        body = _fields(
            account_id=id_text(account_id),
            **amount_fields(amount),
            ledger=str(ledger),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[AccountDetails],
            "POST",
            "/v1/flows/withdrawal",
            body=body,
            idempotency_key=idempotency_key,
        )

    def fund_liquidity(
        self,
        *,
        amount: Amount,
        ledger: str | int,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[LiquidityDetails]:
        """Fund the platform's liquidity on a ledger, which exchanges pay out of (admin key)."""
        body = _fields(
            **amount_fields(amount),
            ledger=str(ledger),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[LiquidityDetails],
            "POST",
            "/v1/flows/liquidity",
            body=body,
            idempotency_key=idempotency_key,
        )

    def liquidity(self, ledger: str | int) -> Liquidity:
        """What exchanges can pay out on a ledger (admin key)."""
        return self._call(Liquidity, "GET", f"/v1/flows/liquidity/{_segment(str(ledger))}")

    def pay(
        self,
        *,
        payer_id: Id,
        merchant_id: Id,
        amount: Amount,
        ledger: str | int,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[PaymentDetails]:
        """A payment to a merchant, with the fee of its schedule (the platform's prices)."""
        body = _fields(
            payer_id=id_text(payer_id),
            merchant_id=id_text(merchant_id),
            **amount_fields(amount),
            ledger=str(ledger),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[PaymentDetails],
            "POST",
            "/v1/flows/payments",
            body=body,
            idempotency_key=idempotency_key,
        )

    def refund(
        self,
        *,
        payment_id: str,
        payer_id: Id | None = None,
        amount: Amount | None = None,
        event_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[RefundDetails]:
        """Refund a payment, in full (`amount` None: what is left) or in part."""
        body = _fields(
            payment_id=payment_id,
            payer_id=None if payer_id is None else id_text(payer_id),
            **amount_fields(amount),
            event_id=event_id,
        )
        return self._call(
            FlowResult[RefundDetails],
            "POST",
            "/v1/flows/refunds",
            body=body,
            idempotency_key=idempotency_key,
        )

    def refundable(self, payment_id: str, *, payer_id: Id | None = None) -> Refundable:
        """What is left to refund of a payment."""
        params = [] if payer_id is None else [("payer_id", id_text(payer_id))]
        path = f"/v1/flows/payments/{_segment(payment_id)}/refundable"
        return self._call(Refundable, "GET", path, params=params)

    def authorize_anchor(
        self,
        *,
        user_id: Id,
        amount: Amount,
        obligation: str | int,
        timeout_s: int,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[AnchorAuthorizationDetails]:
        """Hold a user's funds against an obligation until fulfilled, released or expired
        (admin key)."""
        body = _fields(
            user_id=id_text(user_id),
            **amount_fields(amount),
            obligation=str(obligation),
            timeout_s=timeout_s,
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[AnchorAuthorizationDetails],
            "POST",
            "/v1/flows/anchors",
            body=body,
            idempotency_key=idempotency_key,
        )

    def fulfill_anchor(
        self,
        hold_id: Id,
        *,
        amount: Amount | None = None,
        event_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[AnchorFulfillmentDetails]:
        """Fulfill an anchor authorization, in full or `amount` of it (admin key)."""
        body = _fields(
            **amount_fields(amount),
            event_id=event_id,
        )
        return self._call(
            FlowResult[AnchorFulfillmentDetails],
            "POST",
            f"/v1/flows/anchors/{_segment(hold_id)}/fulfill",
            body=body,
            idempotency_key=idempotency_key,
        )

    def release_anchor(
        self, hold_id: Id, *, event_id: str | None = None, idempotency_key: str | None = None
    ) -> FlowResult[AnchorReleaseDetails]:
        """Release an anchor authorization: the user's funds come back (admin key)."""
        return self._call(
            FlowResult[AnchorReleaseDetails],
            "POST",
            f"/v1/flows/anchors/{_segment(hold_id)}/release",
            body=_fields(event_id=event_id),
            idempotency_key=idempotency_key,
        )

    def anchor_status(self, hold_id: Id) -> AnchorStatus:
        """An anchor authorization's state."""
        return self._call(AnchorStatus, "GET", f"/v1/flows/anchors/{_segment(hold_id)}")

    def escrow_lock(
        self,
        *,
        contract_id: str,
        payer_id: Id,
        amount: Amount,
        ledger: str | int,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[EscrowLockDetails]:
        """Lock a payer's funds in escrow under a contract id."""
        body = _fields(
            contract_id=contract_id,
            payer_id=id_text(payer_id),
            **amount_fields(amount),
            ledger=str(ledger),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[EscrowLockDetails],
            "POST",
            "/v1/flows/escrow/lock",
            body=body,
            idempotency_key=idempotency_key,
        )

    def escrow_release(
        self,
        *,
        contract_id: str,
        merchant_id: Id,
        payer_id: Id | None = None,
        amount: Amount | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[EscrowReleaseDetails]:
        """Release escrowed funds to a merchant, all (`amount` None) or part (admin key)."""
        body = _fields(
            contract_id=contract_id,
            payer_id=None if payer_id is None else id_text(payer_id),
            merchant_id=id_text(merchant_id),
            **amount_fields(amount),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[EscrowReleaseDetails],
            "POST",
            "/v1/flows/escrow/release",
            body=body,
            idempotency_key=idempotency_key,
        )

    def escrow_void(
        self,
        *,
        contract_id: str,
        payer_id: Id | None = None,
        amount: Amount | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[EscrowVoidDetails]:
        """Return escrowed funds to the payer, all (`amount` None) or part (admin key)."""
        body = _fields(
            contract_id=contract_id,
            payer_id=None if payer_id is None else id_text(payer_id),
            **amount_fields(amount),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[EscrowVoidDetails],
            "POST",
            "/v1/flows/escrow/void",
            body=body,
            idempotency_key=idempotency_key,
        )

    def settle(
        self,
        *,
        merchant_id: Id,
        ledger: str | int,
        amount: Amount | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[SettlementDetails]:
        """Settle a merchant's balance out, all (`amount` None) or part (admin key)."""
        body = _fields(
            merchant_id=id_text(merchant_id),
            ledger=str(ledger),
            **amount_fields(amount),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[SettlementDetails],
            "POST",
            "/v1/flows/settlements",
            body=body,
            idempotency_key=idempotency_key,
        )

    def reverse_settlement(
        self, settlement_id: Id, *, event_id: str | None = None
    ) -> FlowResult[SettlementReversalDetails]:
        """Reverse a settlement (admin key)."""
        return self._call(
            FlowResult[SettlementReversalDetails],
            "POST",
            f"/v1/flows/settlements/{_segment(settlement_id)}/reverse",
            body=_fields(event_id=event_id),
        )

    def exchange(
        self,
        *,
        source_account_id: Id,
        target_account_id: Id,
        amount: Amount,
        source_ledger: str | int,
        target_ledger: str | int,
        quote_id: Id | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> FlowResult[ExchangeDetails]:
        """Exchange between two ledgers at a quote's rate (`quote_id`) or the operator's."""
        body = _fields(
            source_account_id=id_text(source_account_id),
            target_account_id=id_text(target_account_id),
            **amount_fields(amount),
            source_ledger=str(source_ledger),
            target_ledger=str(target_ledger),
            quote_id=None if quote_id is None else id_text(quote_id),
            event_id=event_id,
            payment_id=payment_id,
        )
        return self._call(
            FlowResult[ExchangeDetails],
            "POST",
            "/v1/flows/exchanges",
            body=body,
            idempotency_key=idempotency_key,
        )

    def quote(
        self,
        *,
        source_ledger: str | int,
        target_ledger: str | int,
        amount: Amount,
    ) -> Quote:
        """A quote: the current rate fixed for one pair and amount, for 30 s, single use."""
        body = _fields(
            source_ledger=str(source_ledger),
            target_ledger=str(target_ledger),
            **amount_fields(amount),
        )
        return self._call(Quote, "POST", "/v1/flows/exchanges/quotes", body=body)

    # -- prices -----------------------------------------------------------------------------------

    def set_rate(
        self,
        *,
        source_ledger: str | int,
        target_ledger: str | int,
        rate: str | Decimal,
        source: str | None = None,
        valid_from: datetime | str | None = None,
        valid_until: datetime | str | None = None,
    ) -> Rate:
        """Set the operator's rate for a pair (units of the target per unit of the source,
        exact); it supersedes the older one (admin key)."""
        body = _fields(
            source_ledger=str(source_ledger),
            target_ledger=str(target_ledger),
            rate=rate if isinstance(rate, str) else format(rate, "f"),
            valid_from=valid_from.isoformat() if isinstance(valid_from, datetime) else valid_from,
            valid_until=(
                valid_until.isoformat() if isinstance(valid_until, datetime) else valid_until
            ),
            source=source,
        )
        return self._call(Rate, "POST", "/v1/rates", body=body)

    def rates(self) -> list[Rate]:
        """The current rate of every pair that has one."""
        answer = self.request("GET", "/v1/rates")
        return [Rate.model_validate(r) for r in json.loads(answer.content)["rates"]]

    def set_fee_schedule(
        self,
        merchant_id: Id,
        *,
        fee_bps: int,
        fee_fixed: Amount = 0,
        fee_payer: str = "payer",
    ) -> FeeSchedule:
        """Set a merchant's fee schedule: `fee_bps` basis points of the amount plus `fee_fixed`
        (an int of minor units or a Decimal of major units); `fee_payer` is ``payer`` or
        ``merchant`` (admin key)."""
        fixed = amount_fields(fee_fixed)
        body = {
            "fee_bps": fee_bps,
            "fee_fixed": fixed["amount"],
            "amount_unit": fixed["amount_unit"],
            "fee_payer": fee_payer,
        }
        path = f"/v1/fees/merchants/{_segment(merchant_id)}"
        return self._call(FeeSchedule, "PUT", path, body=body)

    def fee_schedule(self, merchant_id: Id) -> FeeSchedule:
        """A merchant's fee schedule, or the platform default."""
        return self._call(FeeSchedule, "GET", f"/v1/fees/merchants/{_segment(merchant_id)}")

    # -- history, activity and statements ---------------------------------------------------------

    def balance_history(
        self,
        account_id: Id,
        *,
        start: TimeArg | None = None,
        end: TimeArg | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> BalanceHistory:
        """One page of an account's balance after each of its transfers in ``[start, end)``
        (times: engine ns, ISO 8601 or an aware datetime), opening with zero at its creation;
        `HistoryNotKeptError` for an account without the engine's history flag."""
        params = [*_period(start, end), ("reverse", "true" if reverse else "false")]
        params += [("limit", str(limit))] if limit is not None else []
        params += [("cursor", cursor)] if cursor is not None else []
        path = f"/v1/accounts/{_segment(account_id)}/history"
        return self._call(BalanceHistory, "GET", path, params=params)

    def balance_as_of(self, account_id: Id, *, as_of: TimeArg) -> BalanceAsOf:
        """An account's balance at `as_of`; ``existed`` false before the account was opened."""
        path = f"/v1/accounts/{_segment(account_id)}/balance"
        return self._call(BalanceAsOf, "GET", path, params=[("as_of", time_text(as_of))])

    def account_activity(
        self,
        account_id: Id,
        *,
        start: TimeArg | None = None,
        end: TimeArg | None = None,
        code: str | int | None = None,
        counterparty: Id | None = None,
        flow: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> ActivityPage:
        """One page of an account's transfers with their counterparty, flow, ids, status and
        captured amounts, filtered; a filtered page may be short and still have a next one."""
        params = [*_period(start, end), ("reverse", "true" if reverse else "false")]
        optional = {
            "code": None if code is None else str(code),
            "counterparty": None if counterparty is None else id_text(counterparty),
            "flow": flow,
            "status": status,
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        }
        params += [(k, v) for k, v in optional.items() if v is not None]
        path = f"/v1/accounts/{_segment(account_id)}/activity"
        return self._call(ActivityPage, "GET", path, params=params)

    def statement(self, account_id: Id, *, start: TimeArg, end: TimeArg) -> Statement:
        """An account's statement for ``[start, end)``: opening, lines, closing."""
        path = f"/v1/accounts/{_segment(account_id)}/statement"
        return self._call(Statement, "GET", path, params=_period(start, end))

    def statement_csv(self, account_id: Id, *, start: TimeArg, end: TimeArg) -> str:
        """The same statement as CSV text (an opening row, one row per line, a closing row)."""
        path = f"/v1/accounts/{_segment(account_id)}/statement"
        params = [*_period(start, end), ("format", "csv")]
        answer = self.request("GET", path, params=params)
        return answer.content.decode()

    # -- webhooks ---------------------------------------------------------------------------------

    def create_webhook(
        self,
        url: str,
        *,
        description: str = "",
        owner_id: str | None = None,
        kinds: Sequence[str] = (),
        ledgers: Sequence[int] = (),
        owners: Sequence[str] = (),
        codes: Sequence[int] = (),
    ) -> Webhook:
        """Register an endpoint, sent the audit events from now on that match the subscription
        (empty lists: all); its signing secret is in this answer only. An owner key's endpoints
        get its owner's events; an admin key may name an `owner_id`."""
        body: dict[str, Any] = {
            "url": url,
            "description": description,
            "subscription": {
                "kinds": list(kinds),
                "ledgers": list(ledgers),
                "owners": list(owners),
                "codes": list(codes),
            },
        }
        if owner_id is not None:
            body["owner_id"] = owner_id
        return self._call(Webhook, "POST", "/v1/webhooks", body=body)

    def list_webhooks(self) -> list[Webhook]:
        """The endpoints this key manages (never their secrets)."""
        answer = self.request("GET", "/v1/webhooks")
        return [Webhook.model_validate(w) for w in json.loads(answer.content)]

    def get_webhook(self, endpoint_id: str) -> Webhook:
        return self._call(Webhook, "GET", f"/v1/webhooks/{quote(endpoint_id, safe='')}")

    def delete_webhook(self, endpoint_id: str) -> None:
        """Remove an endpoint (its delivery log stays)."""
        self.request("DELETE", f"/v1/webhooks/{quote(endpoint_id, safe='')}")

    def rotate_webhook(self, endpoint_id: str) -> Webhook:
        """A new signing secret (in this answer only); the previous one also signs for a day."""
        path = f"/v1/webhooks/{quote(endpoint_id, safe='')}/rotate"
        return self._call(Webhook, "POST", path)

    def replay_webhook(self, endpoint_id: str, *, from_seq: int) -> Webhook:
        """Send the endpoint its events from audit seq `from_seq` on again."""
        path = f"/v1/webhooks/{quote(endpoint_id, safe='')}/replay"
        return self._call(Webhook, "POST", path, body={"from_seq": from_seq})

    def enable_webhook(self, endpoint_id: str) -> Webhook:
        """Enable an endpoint disabled by failures; it resumes at its cursor."""
        path = f"/v1/webhooks/{quote(endpoint_id, safe='')}/enable"
        return self._call(Webhook, "POST", path)

    def webhook_deliveries(
        self, endpoint_id: str, *, limit: int | None = None
    ) -> list[WebhookAttempt]:
        """The endpoint's latest delivery attempts, newest first."""
        path = f"/v1/webhooks/{quote(endpoint_id, safe='')}/deliveries"
        params = [] if limit is None else [("limit", str(limit))]
        answer = self.request("GET", path, params=params)
        return [WebhookAttempt.model_validate(a) for a in json.loads(answer.content)]
