"""One router factory, so every route gets strict JSON bodies and the documented error answers."""

from __future__ import annotations

from fastapi import APIRouter

from tbledger.api.errors import ERROR_RESPONSES
from tbledger.api.strict import StrictJsonRoute

__all__ = ["router_for"]


def router_for(prefix: str, *, tags: list[str]) -> APIRouter:
    return APIRouter(
        prefix=prefix, tags=list(tags), route_class=StrictJsonRoute, responses=ERROR_RESPONSES
    )
