"""tbledger's Python SDK: a typed client of the service's own HTTP API, async and blocking.

`AsyncLedgerClient` and `LedgerClient` have one method per route of the API (docs/api.md):
accounts, balances, transfers (holds, posts, voids, batches, listings), an account's balance
history, balance as of a time, activity and statements, the payment flows
(payments, refunds, escrow, anchors, settlements, exchanges and quotes), rates, fees, the audit
trail's events, recovery and the probes. Answers are immutable models (`Account`, `Balance`,
`TransferResult`, `FlowResult`, ...); errors are the library's own exception tree, the same
classes `LedgerService` raises (a refused transfer is an `InsufficientBalanceError` or
`TransferFailedError`, a 422 a `ValidationError`, a 503 ``outcome_unknown`` an
`OutcomeUnknownError`), each with the API's answer as its ``__cause__`` (`answer_of`).

Writes take an ``idempotency_key``: retry with the same key after a lost answer or a 503, and the
service replays the first outcome instead of moving money twice.

Transports: httpx by default; `AiohttpTransport` (async) where the client's own CPU per request
must stay far below the service's (the load generator, the HTTP benchmarks). The command line,
the load generator and the benchmarks talk to the API through this package only.

A receiver of the service's webhooks checks each delivery with `verify_webhook` (the Standard
Webhooks signature: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
"""

from __future__ import annotations

from tbledger.client._async_client import AsyncLedgerClient
from tbledger.client._errors import answer_of, error_from_answer
from tbledger.client._history import (
    ActivityEntry,
    ActivityPage,
    BalanceAsOf,
    BalanceHistory,
    BalancePoint,
    Counterparty,
    Statement,
    StatementBalance,
    StatementLine,
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
    WebhookSubscriptionInfo,
)
from tbledger.client._spec import TransferSpec
from tbledger.client._sync_client import LedgerClient
from tbledger.client._transport import (
    AiohttpTransport,
    Answer,
    AsyncTransport,
    HttpxAsyncTransport,
    HttpxTransport,
    SyncTransport,
)
from tbledger.webhooks.signing import WebhookVerificationError, verify_webhook

__all__ = [
    "Account",
    "AccountDetails",
    "AccountPage",
    "ActivityEntry",
    "ActivityPage",
    "AiohttpTransport",
    "AnchorAuthorizationDetails",
    "AnchorFulfillmentDetails",
    "AnchorReleaseDetails",
    "AnchorStatus",
    "Answer",
    "AsyncLedgerClient",
    "AsyncTransport",
    "AuditEntry",
    "Balance",
    "BalanceAsOf",
    "BalanceHistory",
    "BalancePoint",
    "BatchResult",
    "Counterparty",
    "EscrowLockDetails",
    "EscrowReleaseDetails",
    "EscrowVoidDetails",
    "ExchangeDetails",
    "FeeSchedule",
    "FlowResult",
    "HttpxAsyncTransport",
    "HttpxTransport",
    "LedgerClient",
    "Liquidity",
    "LiquidityDetails",
    "Liveness",
    "Model",
    "PaymentDetails",
    "Quote",
    "Rate",
    "Readiness",
    "RecoveryReport",
    "RefundDetails",
    "Refundable",
    "SettlementDetails",
    "SettlementReversalDetails",
    "Statement",
    "StatementBalance",
    "StatementLine",
    "SyncTransport",
    "Transfer",
    "TransferPage",
    "TransferResult",
    "TransferSpec",
    "Webhook",
    "WebhookAttempt",
    "WebhookSubscriptionInfo",
    "WebhookVerificationError",
    "answer_of",
    "error_from_answer",
    "verify_webhook",
]
