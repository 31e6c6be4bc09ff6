"""Who may do what through the HTTP API: the authority model (DESIGN §9), in one module.

Every decision is taken from the caller's key (its scope and owner) and from state only the
service writes (account types and owners, the chart's customer codes, the service's ``control``
facts about transfers). Nothing a caller writes — metadata, flow labels, codes, names, ids of its
choosing — grants authority or identifies control-plane state.

* An **admin** key runs the platform: it may call every route.
* An **owner** key acts for one owner. On its own transfers it debits only its owner's customer
  accounts (user, merchant), credits only customer accounts (any owner's: it may pay anyone),
  and uses only the chart's customer transfer codes (``customer = true``: PAYMENT in the default
  chart). System accounts (treasury, fee pool, buffer, refundable, escrow, liquidity, anchor,
  control) move only through the flows that own them. Another owner's account, transfer,
  payment or contract answers exactly as a missing one (404).
* A **hold** is resolved (posted or voided) by the side that was promised the money — the
  credit account's owner — or an admin; the payer cannot take back or shrink its
  authorization. A hold a flow made (an anchor authorization, a freeze) is resolved only through
  that flow.

* **Webhook endpoints** are an owner key's own: it registers endpoints that are sent only its
  owner's events and manages only those; an admin key manages every endpoint.

`ROUTES` is the specification: one entry per route, with who may call it and what an owner key
may do there. docs/api.md shows the same table, and a test walks every route of the app against
both. The routes enforce it with the helpers below, so each rule is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tbledger.api.keys import Principal
from tbledger.balances import AccountType
from tbledger.chart import Chart
from tbledger.errors import UnknownCodeError
from tbledger.model import AccountRecord, TransferIntent

__all__ = [
    "CUSTOMER_ACCOUNT_TYPES",
    "RESERVED_NAME_PREFIXES",
    "ROUTES",
    "Access",
    "RouteRule",
    "is_customer",
    "may_credit",
    "may_debit",
    "may_resolve_hold",
    "may_see",
    "may_use_code",
    "resolved_by_flow",
]

# The account types owner keys open and move money between; every other type is the platform's.
CUSTOMER_ACCOUNT_TYPES: Final = frozenset({AccountType.USER.value, AccountType.MERCHANT.value})

# Names the service gives its own accounts (system accounts by role, flow accounts by payment or
# contract): no key may give an account such a name.
RESERVED_NAME_PREFIXES: Final = ("system:", "refundable:", "escrow:")


class Access(StrEnum):
    """Which keys may call a route at all."""

    PUBLIC = "public"  # no key
    KEY = "key"  # any valid key; what an owner key may do there is in `RouteRule.owner`
    ADMIN = "admin"  # admin keys only; an owner key gets 403


@dataclass(frozen=True, slots=True)
class RouteRule:
    access: Access
    owner: str  # what an owner key may do (for Access.KEY), in the words of docs/api.md


_ADMIN_ONLY = "—"
_OWN_WEBHOOKS = "its owner's webhook endpoints (another owner's read as missing)"

ROUTES: Final[Mapping[tuple[str, str], RouteRule]] = {
    ("GET", "/healthz"): RouteRule(Access.PUBLIC, "anyone (liveness)"),
    ("GET", "/readyz"): RouteRule(Access.PUBLIC, "anyone (readiness)"),
    ("GET", "/metrics"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/admin/recover"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("GET", "/v1/events"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/accounts"): RouteRule(
        Access.KEY, "open user or merchant accounts for its own owner; never name one"
    ),
    ("GET", "/v1/accounts/{account_id}"): RouteRule(Access.KEY, "its owner's accounts"),
    ("GET", "/v1/accounts/by-name/{name}"): RouteRule(
        Access.KEY, "its owner's accounts (another's name reads as missing)"
    ),
    ("GET", "/v1/accounts"): RouteRule(
        Access.KEY, "its owner's accounts (naming another owner lists nothing)"
    ),
    ("POST", "/v1/accounts/{account_id}/freeze"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/accounts/{account_id}/unfreeze"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/accounts/{account_id}/close"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("GET", "/v1/balances/{account_id}"): RouteRule(Access.KEY, "its owner's accounts"),
    ("GET", "/v1/balances"): RouteRule(Access.KEY, "its owner's accounts"),
    ("POST", "/v1/transfers"): RouteRule(
        Access.KEY,
        "debit its owner's customer accounts; credit customer accounts; customer codes only",
    ),
    ("POST", "/v1/transfers/pending"): RouteRule(
        Access.KEY, "as POST /v1/transfers: hold its owner's money for a customer account"
    ),
    ("POST", "/v1/transfers/{transfer_id}/post"): RouteRule(
        Access.KEY, "holds crediting its owner's accounts (the receiving side); not a flow's"
    ),
    ("POST", "/v1/transfers/{transfer_id}/void"): RouteRule(
        Access.KEY, "holds crediting its owner's accounts (the receiving side); not a flow's"
    ),
    ("POST", "/v1/transfers/batch"): RouteRule(
        Access.KEY, "as POST /v1/transfers, for every transfer of the batch"
    ),
    ("GET", "/v1/transfers/{transfer_id}"): RouteRule(
        Access.KEY, "transfers with one of its owner's accounts on either side"
    ),
    ("GET", "/v1/transfers"): RouteRule(
        Access.KEY, "transfers with one of its owner's accounts on either side"
    ),
    ("GET", "/v1/accounts/{account_id}/transfers"): RouteRule(Access.KEY, "its owner's accounts"),
    ("GET", "/v1/accounts/{account_id}/history"): RouteRule(Access.KEY, "its owner's accounts"),
    ("GET", "/v1/accounts/{account_id}/balance"): RouteRule(Access.KEY, "its owner's accounts"),
    ("GET", "/v1/accounts/{account_id}/activity"): RouteRule(
        Access.KEY, "its owner's accounts (other owners' counterparties by id only)"
    ),
    ("GET", "/v1/accounts/{account_id}/statement"): RouteRule(
        Access.KEY, "its owner's accounts (other owners' counterparties by id only)"
    ),
    ("POST", "/v1/flows/deposit"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/withdrawal"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/liquidity"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("GET", "/v1/flows/liquidity/{ledger}"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/payments"): RouteRule(
        Access.KEY, "pay from its owner's customer account to any merchant account"
    ),
    ("POST", "/v1/flows/refunds"): RouteRule(
        Access.KEY, "refund payments its owner's merchant accounts received"
    ),
    ("GET", "/v1/flows/payments/{payment_id}/refundable"): RouteRule(
        Access.KEY, "payments its owner made or received"
    ),
    ("POST", "/v1/flows/anchors"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/anchors/{hold_id}/fulfill"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/anchors/{hold_id}/release"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("GET", "/v1/flows/anchors/{hold_id}"): RouteRule(
        Access.KEY, "authorizations holding its owner's accounts"
    ),
    ("POST", "/v1/flows/escrow/lock"): RouteRule(
        Access.KEY, "lock funds of its owner's customer account"
    ),
    ("POST", "/v1/flows/escrow/release"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/escrow/void"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/settlements"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/settlements/{settlement_id}/reverse"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/flows/exchanges"): RouteRule(
        Access.KEY, "between its owner's own accounts, at the platform's rate or its own quote"
    ),
    ("POST", "/v1/flows/exchanges/quotes"): RouteRule(
        Access.KEY, "quotes for its owner (usable by its owner's keys only)"
    ),
    ("POST", "/v1/rates"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("GET", "/v1/rates"): RouteRule(Access.KEY, "the current rates (not who set them)"),
    ("PUT", "/v1/fees/merchants/{account_id}"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("GET", "/v1/fees/merchants/{account_id}"): RouteRule(
        Access.KEY, "any merchant's fee schedule (what a payer will be charged)"
    ),
    # The web console (tbledger.api.console): its pages and assets hold no data; its fragments
    # render the /v1 routes' answers for the key that asks, as those routes would answer it.
    ("GET", "/"): RouteRule(Access.PUBLIC, "anyone (a redirect to /console)"),
    ("GET", "/console"): RouteRule(
        Access.PUBLIC, "anyone (a page with no data: it asks for data with the signed-in key)"
    ),
    ("GET", "/console/sign-in"): RouteRule(
        Access.PUBLIC, "anyone (a page with no data: it asks for data with the signed-in key)"
    ),
    ("GET", "/console/account"): RouteRule(
        Access.PUBLIC, "anyone (a page with no data: it asks for data with the signed-in key)"
    ),
    ("GET", "/console/transfer"): RouteRule(
        Access.PUBLIC, "anyone (a page with no data: it asks for data with the signed-in key)"
    ),
    ("GET", "/console/system"): RouteRule(
        Access.PUBLIC, "anyone (a page with no data: it asks for data with the signed-in key)"
    ),
    ("GET", "/console/events"): RouteRule(
        Access.PUBLIC, "anyone (a page with no data: it asks for data with the signed-in key)"
    ),
    ("GET", "/console/health"): RouteRule(
        Access.PUBLIC, "anyone (a page with no data: it asks for data with the signed-in key)"
    ),
    ("GET", "/console/static/{asset}"): RouteRule(
        Access.PUBLIC, "anyone (the console's scripts, styles and icon)"
    ),
    ("GET", "/console/fragments/whoami"): RouteRule(
        Access.KEY, "its own key's id, scope and owner"
    ),
    ("GET", "/console/fragments/accounts"): RouteRule(
        Access.KEY, "as GET /v1/accounts and by name: its owner's accounts"
    ),
    ("GET", "/console/fragments/account"): RouteRule(
        Access.KEY, "as GET /v1/accounts/{account_id} with its activity: its owner's accounts"
    ),
    ("GET", "/console/fragments/transfer"): RouteRule(
        Access.KEY, "as GET /v1/transfers/{transfer_id}: transfers with one of its owner's accounts"
    ),
    ("GET", "/console/fragments/system"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("GET", "/console/fragments/events"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("GET", "/console/fragments/health"): RouteRule(Access.ADMIN, _ADMIN_ONLY),
    ("POST", "/v1/webhooks"): RouteRule(
        Access.KEY, "register endpoints for its own owner's events only"
    ),
    ("GET", "/v1/webhooks"): RouteRule(Access.KEY, _OWN_WEBHOOKS),
    ("GET", "/v1/webhooks/{endpoint_id}"): RouteRule(Access.KEY, _OWN_WEBHOOKS),
    ("DELETE", "/v1/webhooks/{endpoint_id}"): RouteRule(Access.KEY, _OWN_WEBHOOKS),
    ("POST", "/v1/webhooks/{endpoint_id}/rotate"): RouteRule(Access.KEY, _OWN_WEBHOOKS),
    ("POST", "/v1/webhooks/{endpoint_id}/replay"): RouteRule(Access.KEY, _OWN_WEBHOOKS),
    ("POST", "/v1/webhooks/{endpoint_id}/enable"): RouteRule(Access.KEY, _OWN_WEBHOOKS),
    ("GET", "/v1/webhooks/{endpoint_id}/deliveries"): RouteRule(Access.KEY, _OWN_WEBHOOKS),
}


def is_customer(record: AccountRecord) -> bool:
    return record.account_type in CUSTOMER_ACCOUNT_TYPES


def may_see(caller: Principal, record: AccountRecord) -> bool:
    """Admin keys see every account; owner keys their owner's only."""
    return caller.is_admin or (record.owner_id is not None and record.owner_id == caller.owner_id)


def may_debit(caller: Principal, record: AccountRecord) -> bool:
    """Owner keys debit only their owner's customer accounts."""
    return caller.is_admin or (may_see(caller, record) and is_customer(record))


def may_credit(caller: Principal, record: AccountRecord) -> bool:
    """Owner keys credit only customer accounts (any owner's); system accounts move only through
    the flows that own them."""
    return caller.is_admin or is_customer(record)


def may_use_code(caller: Principal, chart: Chart, code: int) -> bool:
    """Owner keys use only the chart's customer transfer codes."""
    if caller.is_admin:
        return True
    try:
        return chart.transfer_code(code).customer
    except UnknownCodeError:
        return False


def resolved_by_flow(intent: TransferIntent | None) -> bool:
    """Whether a hold belongs to a flow (or an account status change): the service recorded
    control facts for it, so only that flow may post or void it."""
    return intent is not None and bool(intent.control)


def may_resolve_hold(caller: Principal, credit: AccountRecord | None) -> bool:
    """The receiving side of a hold (its credit account's owner) or an admin resolves it."""
    return caller.is_admin or (credit is not None and may_see(caller, credit))
