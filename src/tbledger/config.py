"""The service's settings, from the environment and from code (pydantic-settings).

Every setting has a default that works on a laptop: the embedded engine in memory and SQLite.
The specification's variables keep working: ``TIGERBEETLE_ADDRESSES`` and
``TIGERBEETLE_CLUSTER_ID`` select a real cluster, ``TB_REQUEST_TIMEOUT`` and ``TB_RETRY_DELAY``
(milliseconds, as in the specification's TypeScript service) set the deadline and the first retry
delay. tbledger's own variables start with ``TBLEDGER_``.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tbledger.engine import EngineConfig, parse_engine_url

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Configuration of a `LedgerService`; construct with keywords or read the environment."""

    model_config = SettingsConfigDict(env_prefix="TBLEDGER_", extra="forbid", frozen=True)

    engine_url: str | None = Field(
        default=None,
        description="tigerbeetle://…, embedded:///path or memory://; None: TIGERBEETLE_* or memory",
    )
    tigerbeetle_addresses: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TIGERBEETLE_ADDRESSES", "tigerbeetle_addresses"),
    )
    tigerbeetle_cluster_id: int = Field(
        default=0,
        ge=0,
        validation_alias=AliasChoices("TIGERBEETLE_CLUSTER_ID", "tigerbeetle_cluster_id"),
    )
    database_url: str = Field(
        default="sqlite:///tbledger.db",
        description="postgresql://… or sqlite:///path (sqlite:// is in memory)",
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
        validation_alias=AliasChoices("TB_REQUEST_TIMEOUT", "request_timeout_ms"),
        description="deadline per engine request; the request itself is never cancelled",
    )
    retry_delay_ms: int = Field(
        default=50,
        gt=0,
        le=60_000,
        validation_alias=AliasChoices("TB_RETRY_DELAY", "retry_delay_ms"),
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

    def engine_config(self) -> EngineConfig:
        """The engine to use: `engine_url`, else the TIGERBEETLE_* variables, else memory."""
        env: dict[str, str] = {}
        if self.tigerbeetle_addresses:
            env["TIGERBEETLE_ADDRESSES"] = self.tigerbeetle_addresses
            env["TIGERBEETLE_CLUSTER_ID"] = str(self.tigerbeetle_cluster_id)
        return parse_engine_url(self.engine_url, env=env)
