"""Query filters for tests: the official AccountFilter and QueryFilter have no defaults.

Every field not given is zero (no bound, no match on it); ``limit`` defaults to the most one
reply holds (8189).
"""

from __future__ import annotations

from typing import Any

import tigerbeetle as tb

from tbledger.limits import BATCH_EVENTS_MAX

__all__ = ["account_filter", "query_filter"]

_COMMON = dict.fromkeys(
    (
        "user_data_128",
        "user_data_64",
        "user_data_32",
        "code",
        "timestamp_min",
        "timestamp_max",
        "flags",
    ),
    0,
) | {"limit": BATCH_EVENTS_MAX}


def account_filter(**fields: Any) -> tb.AccountFilter:
    """An AccountFilter from `fields` (``account_id`` at least), every other field zero."""
    return tb.AccountFilter(**(_COMMON | {"account_id": 0} | fields))


def query_filter(**fields: Any) -> tb.QueryFilter:
    """A QueryFilter from `fields`, every other field zero."""
    return tb.QueryFilter(**(_COMMON | {"ledger": 0} | fields))
