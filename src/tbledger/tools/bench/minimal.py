"""The HTTP section's baseline server: the least a FastAPI service does for one request.

Run as ``python -m tbledger.tools.bench.minimal --port P --accounts N --setup FILE``: serves
``POST /v1/transfers`` with a pydantic body (the fields the benchmark sends) and one header
dependency (the bearer key), answering 201 with a small pydantic model, and nothing else: no
engine, no store, no middleware. It writes ``{"token", "account_ids", "pid"}`` to FILE as the
service's server does, so the same load clients drive both; uvicorn runs it with the same
settings. What tbledger spends per request above this is tbledger's own cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

__all__ = ["main"]


class TransferIn(BaseModel):
    debit_account_id: str
    credit_account_id: str
    amount: str
    amount_unit: str = "major"
    ledger: str
    code: str = "PAYMENT"


class TransferOut(BaseModel):
    id: str
    status: str
    ok: bool


TOKEN = "minimal"


async def caller(authorization: Annotated[str | None, Header()] = None) -> str:
    if authorization != f"Bearer {TOKEN}":
        raise HTTPException(401)
    return TOKEN


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/transfers", status_code=201, response_model=TransferOut)
    async def create(body: TransferIn, key: Annotated[str, Depends(caller)]) -> TransferOut:
        return TransferOut(id="0x1", status="created", ok=True)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--setup", required=True)
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    setup = {
        "token": TOKEN,
        "account_ids": [f"0x{n:032x}" for n in range(1, args.accounts + 1)],
        "pid": os.getpid(),
    }
    with open(f"{args.setup}.part", "w", encoding="utf-8") as out:
        json.dump(setup, out)
    os.replace(f"{args.setup}.part", args.setup)
    uvicorn.run(
        _app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        log_config=None,
        backlog=4096,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
