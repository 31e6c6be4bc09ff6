"""Operations: liveness, readiness, metrics, recovery, and the audit event stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Header, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tbledger.api.context import Admin, Ctx
from tbledger.api.errors import ERROR_RESPONSES
from tbledger.api.render import audit_out
from tbledger.api.routing import router_for
from tbledger.api.schemas import RecoveryOut

__all__ = ["router"]

router = router_for("", tags=["operations"])


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    engine: bool
    database: bool
    breaker: str
    engine_latency_ms: float | None
    detail: dict[str, str]


@router.get("/healthz", response_model=Liveness, responses={})
async def healthz() -> Liveness:
    """Liveness: the process answers. No key needed."""
    return Liveness(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(ctx: Ctx, response: Response) -> Readiness:
    """Readiness: the engine and the database answer and the circuit is not open. No key needed."""
    health = await ctx.service.health_check()
    if not health.ok:
        response.status_code = 503
    return Readiness(
        ready=health.ok,
        engine=health.engine_ok,
        database=health.store_ok,
        breaker=health.breaker.value,
        engine_latency_ms=health.engine_latency_ms,
        # Reasons stay in the logs: a public probe must not leak addresses or driver messages.
        detail={k: "unavailable" for k in health.detail},
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(ctx: Ctx, _admin: Admin) -> Response:
    """Prometheus metrics (admin key)."""
    body = await ctx.metrics.render(ctx.service)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.post("/v1/admin/recover", response_model=RecoveryOut, responses=ERROR_RESPONSES)
async def recover(ctx: Ctx, _admin: Admin) -> RecoveryOut:
    """Resolve every intent without an outcome now (admin key); also runs in the background."""
    report = await ctx.service.recover()
    return RecoveryOut(**vars(report))


@router.get(
    "/v1/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent audit events"},
        **ERROR_RESPONSES,
    },
)
async def events(
    ctx: Ctx,
    _admin: Admin,
    since: Annotated[int, Query(ge=0, le=(1 << 63) - 1, description="last seq seen")] = 0,
    follow: Annotated[bool, Query(description="keep the stream open for new events")] = True,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$")
    ] = None,
) -> StreamingResponse:
    """The audit log as server-sent events (admin key), from after `since`; each event's `id`
    is its seq, so a reconnecting EventSource resumes where it stopped (Last-Event-ID)."""

    if last_event_id is not None:
        since = max(since, int(last_event_id))

    async def stream() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        if follow:
            async for event in ctx.service.events(since):
                yield _sse(event)
            return
        cursor = since
        while True:
            batch = await ctx.service.events_since(cursor, 1000)
            for event in batch:
                cursor = event.seq
                yield _sse(event)
            if len(batch) < 1000:
                return

    return StreamingResponse(stream(), media_type="text/event-stream")


def _sse(event: object) -> str:
    body = audit_out(event).model_dump(mode="json")  # type: ignore[arg-type]
    return f"id: {body['seq']}\nevent: {body['kind']}\ndata: {json.dumps(body)}\n\n"
