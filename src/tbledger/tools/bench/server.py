"""The HTTP section's server process: the API over the twin, served by uvicorn.

Run as ``python -m tbledger.tools.bench.server --port P --database-url URL [--schema S]
[--engine-url E] --accounts N --setup FILE``: connects a `LedgerService` (the twin in memory
unless `E` says otherwise, the audit trail in `URL`), creates N ``system_buffer`` accounts on
ledger 1 (in bulk, as the benchmarks do) and an admin API key, writes ``{"token",
"account_ids", "pid"}`` to FILE, then serves the app until SIGTERM or SIGINT. Access logs are
off; uvicorn picks its event loop and HTTP parser as
``tbledger serve`` does (``auto``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["main"]


async def _serve(args: argparse.Namespace) -> None:
    import uvicorn  # noqa: PLC0415

    from tbledger.api import create_app, mint_key  # noqa: PLC0415
    from tbledger.config import Settings  # noqa: PLC0415
    from tbledger.ids import format_id  # noqa: PLC0415
    from tbledger.service import LedgerService  # noqa: PLC0415
    from tbledger.tools.bench.workbench import Workbench  # noqa: PLC0415

    settings = Settings(
        engine_url=args.engine_url,
        database_url=args.database_url,
        database_schema=args.schema,
        audit=True,
    )
    service = LedgerService(settings)
    await service.connect()
    try:
        bench = Workbench(service.engine, "http-server", args.seed)
        await bench.create_accounts(args.accounts)
        await bench.map_accounts(service.store)
        key = mint_key(name="bench", scope="admin")
        await service.store.create_api_key(key.record)
        setup = {
            "token": key.token,
            "account_ids": [format_id(a) for a in bench.account_ids],
            "pid": os.getpid(),
        }
        temporary = f"{args.setup}.part"
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(setup, out)
        os.replace(temporary, args.setup)
        config = uvicorn.Config(
            create_app(service=service, background=False, freeze_gc=True),  # as tbledger serve
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
            log_config=None,
            lifespan="on",
            backlog=4096,
        )
        server = uvicorn.Server(config)
        if args.profile:
            import cProfile  # noqa: PLC0415

            profiler = cProfile.Profile()
            profiler.enable()
            try:
                await server.serve()
            finally:
                profiler.disable()
                profiler.dump_stats(args.profile)
        else:
            await server.serve()
    finally:
        await service.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--engine-url", default="memory://")
    parser.add_argument("--schema", default=None)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--setup", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", default=None, help="write cProfile statistics here at exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # uvicorn shuts down on SIGTERM, then raises the signal again for the previous handler: a
    # handler that does nothing lets the service close and the profile be written.
    signal.signal(signal.SIGTERM, lambda number, frame: None)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
