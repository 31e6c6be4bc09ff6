"""The service's settings, from the environment and from code (pydantic-settings).

Every setting has a default that works on a laptop: the embedded engine in memory and SQLite.
The specification's variables keep working: ``TIGERBEETLE_ADDRESSES`` and
``TIGERBEETLE_CLUSTER_ID`` select a real cluster, ``TB_REQUEST_TIMEOUT`` and ``TB_RETRY_DELAY``
(milliseconds, as in the specification's TypeScript service) set the deadline and the first retry
delay. tbledger's own variables start with ``TBLEDGER_``.

A bad value (out of range, of the wrong type, from a keyword or from the environment) or an
unknown keyword (a typo must not be ignored: the default it leaves in place is not what was asked
for) raises `ConfigurationError`, part of tbledger's one exception tree, chained ``from``
pydantic's error and naming every field at fault with its environment variable. The message never
repeats the value: a database URL may carry a password.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from tbledger.engine import EngineConfig, parse_engine_url
from tbledger.errors import ConfigurationError
from tbledger.limits import (
    CDC_PUBLISH_IDLE_INTERVAL_S,
    CDC_PUBLISH_IDLE_INTERVAL_S_MAX,
    CDC_PUBLISH_IDLE_INTERVAL_S_MIN,
    FEE_BPS_MAX,
    WEBHOOK_BACKOFF_CAP_S,
    WEBHOOK_FAILURES_MAX,
    WEBHOOK_LEASE_S,
    WEBHOOK_TIMEOUT_S,
)
from tbledger.store.backend import StoreOptions

__all__ = ["Settings"]

_ENV_PREFIX = "TBLEDGER_"


class Settings(BaseSettings):
    """Configuration of a `LedgerService`; construct with keywords or read the environment."""

    # Fields with a `validation_alias` are read from the environment under exactly those names
    # (the prefix does not apply to them), so each lists its TBLEDGER_ spelling too; keywords in
    # code use the field's name (populate_by_name).
    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX, extra="forbid", frozen=True, populate_by_name=True
    )

    engine_url: str | None = Field(
        default=None,
        description="tigerbeetle://…, embedded:///path or memory://; None: TIGERBEETLE_* or memory",
    )
    tigerbeetle_addresses: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TIGERBEETLE_ADDRESSES", "TBLEDGER_TIGERBEETLE_ADDRESSES"),
    )
    tigerbeetle_cluster_id: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("TIGERBEETLE_CLUSTER_ID", "TBLEDGER_TIGERBEETLE_CLUSTER_ID"),
    )
    database_url: str = Field(
        default="sqlite:///tbledger.db",
        description="postgresql://… or sqlite:///path (sqlite:// is in memory)",
    )
    database_schema: str | None = Field(
        default=None, description="PostgreSQL only: the schema the tables live in (search_path)"
    )
    database_role: str | None = Field(
        default=None,
        description=(
            "PostgreSQL only: the role to act as (SET ROLE), e.g. tbledger_app, which may not "
            "change or delete the audit trail; the login user must be a member of it"
        ),
    )
    migrate: bool = Field(default=True, description="upgrade the store's schema on connect")
    audit: bool = Field(
        default=True,
        description=(
            "persist transfer intents and outcomes (write last, read first); off: transfers go "
            "straight to the engine, with no crash recovery and no idempotency keys"
        ),
    )
    request_timeout_ms: int = Field(
        default=5_000,
        gt=0,
        le=600_000,
        validation_alias=AliasChoices("TB_REQUEST_TIMEOUT", "TBLEDGER_REQUEST_TIMEOUT_MS"),
        description="deadline per engine request; the request itself is never cancelled",
    )
    retry_delay_ms: int = Field(
        default=50,
        gt=0,
        le=60_000,
        validation_alias=AliasChoices("TB_RETRY_DELAY", "TBLEDGER_RETRY_DELAY_MS"),
        description="first retry delay; doubles per attempt, with full jitter",
    )
    retry_delay_max_ms: int = Field(default=2_000, gt=0, le=600_000)
    retry_attempts_max: int = Field(default=5, ge=1, le=100)
    breaker_failure_threshold: int = Field(default=5, ge=1, le=10_000)
    breaker_reset_timeout_s: float = Field(default=5.0, gt=0, le=3_600)
    recovery_interval_s: float = Field(
        default=30.0, gt=0, le=86_400, description="how often recovery and expiry run"
    )
    recovery_grace_s: float = Field(
        default=10.0,
        ge=0,
        le=3_600,
        description="intents younger than this are in flight, not in the recovery backlog",
    )

    # The platform's default fee, for merchants without a schedule of their own (`tbledger.prices`).
    # A percentage only: a fixed part is in minor units of one ledger, so it is set per merchant
    # account (which has one ledger), never platform-wide.
    fee_bps: int = Field(
        default=0,
        ge=0,
        le=FEE_BPS_MAX,
        description="default payment fee in basis points of the amount (100 = 1%), rounded down",
    )
    fee_payer: Literal["payer", "merchant"] = Field(
        default="payer",
        description="who pays the default fee: the payer (on top) or the merchant (out of it)",
    )

    # Webhooks (`tbledger.webhooks`): delivery from the audit log, at least once.
    webhooks: bool = Field(
        default=False,
        description="deliver webhooks from this process (`tbledger serve` runs the deliverer)",
    )
    webhook_allowed_hosts: str = Field(
        default="",
        max_length=4096,
        description="comma-separated hosts webhook URLs may name; empty: any public host",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="allow webhook hosts resolving to loopback or private addresses (tests, LANs)",
    )
    webhook_timeout_s: float = Field(default=WEBHOOK_TIMEOUT_S, gt=0, le=60)
    webhook_failures_max: int = Field(
        default=WEBHOOK_FAILURES_MAX,
        ge=1,
        le=10_000,
        description="consecutive failed deliveries before an endpoint is disabled",
    )
    webhook_backoff_base_s: float = Field(default=1.0, gt=0, le=3_600)
    webhook_backoff_cap_s: float = Field(default=WEBHOOK_BACKOFF_CAP_S, gt=0, le=86_400)
    webhook_lease_s: float = Field(default=WEBHOOK_LEASE_S, gt=0, le=3_600)
    webhook_poll_s: float = Field(
        default=1.0, gt=0, le=3_600, description="how often idle endpoints look for new events"
    )

    # The change stream (`tbledger.cdc`): TigerBeetle's CDC messages from RabbitMQ into the store.
    cdc_url: str | None = Field(
        default=None,
        max_length=2048,
        description="AMQP URL of the broker the change stream is on (`tbledger serve` consumes "
        "it when set; `tbledger cdc run` reads it); None: no change stream",
    )
    cdc_exchange: str = Field(
        default="tigerbeetle.cdc",
        min_length=1,
        max_length=255,
        description="the exchange `tigerbeetle amqp --publish-exchange` (or the embedded "
        "engine, with `cdc_publish_url`) publishes to",
    )
    cdc_routing_key: str = Field(
        default="",
        max_length=255,
        description="the job's --publish-routing-key, the consumer queue's binding key",
    )
    cdc_queue: str = Field(
        default="tbledger.cdc",
        min_length=1,
        max_length=200,
        description="the consumer's durable queue (and `<queue>.rejected` for bad messages)",
    )
    cdc_declare_exchange: bool = Field(
        default=False,
        description="declare the exchange (durable, fanout) rather than require it to exist",
    )
    cdc_supervise: bool = Field(
        default=False,
        description="run `tigerbeetle amqp` from this process, restarted when it exits",
    )
    tigerbeetle_bin: str = Field(
        default="tigerbeetle",
        max_length=4096,
        validation_alias=AliasChoices("TIGERBEETLE_BIN", "TBLEDGER_TIGERBEETLE_BIN"),
        description="the TigerBeetle binary `cdc_supervise` runs",
    )

    # The embedded engine's change stream (`tbledger.cdc.TwinPublisher`): `tbledger serve`
    # publishes it as `tigerbeetle amqp` does for a real cluster.
    cdc_publish_url: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "AMQP URL to publish the embedded engine's change stream to (`tbledger serve`); "
            "unset: not published. A real cluster publishes with `tigerbeetle amqp`"
        ),
    )
    cdc_publish_idle_interval_s: float = Field(
        default=CDC_PUBLISH_IDLE_INTERVAL_S,
        ge=CDC_PUBLISH_IDLE_INTERVAL_S_MIN,
        le=CDC_PUBLISH_IDLE_INTERVAL_S_MAX,
        description="how long the publisher waits before looking again when nothing was new",
    )

    if not TYPE_CHECKING:
        # Hidden from type checkers, which keep the field-by-field signature pydantic declares
        # (so they refuse a misspelt keyword before it runs); at run time the same call raises
        # tbledger's own error instead of pydantic's.
        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except PydanticValidationError as exc:
                raise ConfigurationError(_describe(exc.errors(include_url=False))) from exc
            except SettingsError as exc:
                # The environment held a value the settings sources could not even parse.
                raise ConfigurationError(f"invalid settings: {exc}") from exc

    def webhook_hosts(self) -> tuple[str, ...]:
        """The webhook host allowlist as a tuple (empty: every public host)."""
        return tuple(h.strip().lower() for h in self.webhook_allowed_hosts.split(",") if h.strip())

    def store_options(self) -> StoreOptions | None:
        """The store's PostgreSQL schema and role, if either is set."""
        if self.database_schema is None and self.database_role is None:
            return None
        return StoreOptions(schema=self.database_schema, role=self.database_role)

    def engine_config(self) -> EngineConfig:
        """The engine to use: `engine_url`, else the TIGERBEETLE_* variables, else memory."""
        env: dict[str, str] = {}
        if self.tigerbeetle_addresses:
            env["TIGERBEETLE_ADDRESSES"] = self.tigerbeetle_addresses
            env["TIGERBEETLE_CLUSTER_ID"] = str(self.tigerbeetle_cluster_id)
        return parse_engine_url(self.engine_url, env=env)


def _env_names(name: str) -> list[str]:
    """The environment variables a field is read from."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"{_ENV_PREFIX}{name.upper()}"]


def _field_of(key: str) -> str | None:
    """The field `key` names: a field's own name or one of its environment variables."""
    if key in Settings.model_fields:
        return key
    for name in Settings.model_fields:
        if key.upper() in _env_names(name):
            return name
    return None


def _describe(errors: list[ErrorDetails]) -> str:
    """One line naming each field at fault, its environment variable and what is wrong; the
    values themselves are left out (a database URL may carry a password)."""
    parts: list[str] = []
    for error in errors:
        key = ".".join(str(part) for part in error["loc"]) or "settings"
        name = _field_of(key)
        if name is None:
            close = difflib.get_close_matches(key.lower(), Settings.model_fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            parts.append(f"{key!r} is not a setting{hint}")
            continue
        parts.append(f"{name} ({' or '.join(_env_names(name))}): {error['msg']}")
    return "invalid settings: " + "; ".join(parts)
