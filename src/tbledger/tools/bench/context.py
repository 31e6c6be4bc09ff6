"""What a section runs with: the options, the sizes, PostgreSQL, the real server, a folder."""

from __future__ import annotations

from dataclasses import dataclass

from tbledger.tools.bench.common import BenchOptions, Plan, Steps
from tbledger.tools.bench.env import Postgres, RealServer

__all__ = ["Context"]


@dataclass
class Context:
    options: BenchOptions
    plan: Plan
    postgres: Postgres
    real: RealServer
    folder: str  # temporary: journals, SQLite files
    steps: Steps

    @property
    def seed(self) -> int:
        return self.options.seed

    @property
    def audit_store(self) -> str:
        """The audit trail's database: PostgreSQL when there is one, else SQLite."""
        return "postgresql" if self.postgres.url is not None else "sqlite"
