"""A real HTTP receiver on loopback for webhook tests: records every request; its answer to each
is decided by a test-supplied function (status, delay), so it can fail, time out or be slow."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def seq(self) -> int:
        return int(json.loads(self.body)["seq"])


@dataclass
class Receiver:
    # (request number from 1) -> (status, delay_s, extra headers)
    answer: Callable[[int], tuple[int, float, dict[str, str]]] = lambda n: (200, 0.0, {})
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(dict(request.headers), body))
        status, delay_s, headers = self.answer(len(self.received))
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.Response(status=status, headers=headers)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
