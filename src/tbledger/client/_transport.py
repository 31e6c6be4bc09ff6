"""How the client's requests travel: one small port, three implementations.

`AsyncLedgerClient` and `LedgerClient` build a request (method, path, query, JSON bytes, headers)
and read an `Answer` (status, ``Retry-After``, body); everything in between is a transport's job.

* `HttpxAsyncTransport` and `HttpxTransport` (httpx): the general ones, the defaults.
* `AiohttpTransport` (aiohttp, async only): for callers whose own CPU is part of what they
  measure, the load generator and the HTTP benchmarks. At a few hundred requests a second httpx
  spends more CPU per request than the service does, so a client on it would measure itself.

A transport raises `ApiUnreachableError` when no answer came (a refused connection, a reset, a
timeout) and returns every answer, errors included; reading an error answer is the client's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

from tbledger.errors import ApiUnreachableError

__all__ = [
    "AiohttpTransport",
    "Answer",
    "AsyncTransport",
    "HttpxAsyncTransport",
    "HttpxTransport",
    "StreamRefused",
    "SyncTransport",
]

Params = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer, read in full."""

    status: int
    content: bytes
    retry_after: str | None = None


class StreamRefused(Exception):  # noqa: N818 (a signal between transport and client, not an error)
    """A streamed request was answered with an error: `answer` holds it, read in full."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


class AsyncTransport(Protocol):
    """What `AsyncLedgerClient` needs of HTTP."""

    base_url: str

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = (),
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer: ...

    def stream_lines(
        self, path: str, *, params: Params = (), headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[str]:
        """The lines of a GET's body as they arrive; `StreamRefused` on an error answer."""
        ...

    async def aclose(self) -> None: ...


class SyncTransport(Protocol):
    """What `LedgerClient` needs of HTTP."""

    base_url: str

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = (),
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer: ...

    def stream_lines(
        self, path: str, *, params: Params = (), headers: Mapping[str, str] | None = None
    ) -> Iterator[str]:
        """The lines of a GET's body as they arrive; `StreamRefused` on an error answer."""
        ...

    def close(self) -> None: ...


def _unreachable(base_url: str, exc: BaseException) -> ApiUnreachableError:
    return ApiUnreachableError(
        f"cannot reach the service at {base_url}: {exc or type(exc).__name__}",
        status=None,
        code="unreachable",
    )


class HttpxAsyncTransport:
    """httpx, async: one pooled ``httpx.AsyncClient``."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str], timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=dict(headers), timeout=timeout_s
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = (),
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        try:
            response = await self._http.request(
                method, path, params=list(params), content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        return Answer(response.status_code, response.content, response.headers.get("retry-after"))

    async def stream_lines(
        self, path: str, *, params: Params = (), headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[str]:
        try:
            async with self._http.stream(
                "GET", path, params=list(params), headers=headers, timeout=None
            ) as response:
                if response.status_code != 200:
                    content = await response.aread()
                    raise StreamRefused(
                        Answer(response.status_code, content, response.headers.get("retry-after"))
                    )
                async for line in response.aiter_lines():
                    yield line
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def aclose(self) -> None:
        await self._http.aclose()


class HttpxTransport:
    """httpx, blocking: one pooled ``httpx.Client``."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str], timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=dict(headers), timeout=timeout_s)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = (),
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        try:
            response = self._http.request(
                method, path, params=list(params), content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        return Answer(response.status_code, response.content, response.headers.get("retry-after"))

    def stream_lines(
        self, path: str, *, params: Params = (), headers: Mapping[str, str] | None = None
    ) -> Iterator[str]:
        try:
            with self._http.stream(
                "GET", path, params=list(params), headers=headers, timeout=None
            ) as response:
                if response.status_code != 200:
                    content = response.read()
                    raise StreamRefused(
                        Answer(response.status_code, content, response.headers.get("retry-after"))
                    )
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    def close(self) -> None:
        self._http.close()


class AiohttpTransport:
    """aiohttp: one ``ClientSession`` holding at most `connections` keep-alive connections.

    Reads are retried `read_attempts` times on a transport error (a GET changes nothing); writes
    never are: a write whose answer was lost is retried by the caller, with its idempotency key.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        connections: int,
        keepalive_s: float | None = None,
        read_attempts: int = 1,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        connector = aiohttp.TCPConnector(
            limit=connections,
            limit_per_host=0,
            keepalive_timeout=keepalive_s,
            ttl_dns_cache=None,
        )
        self._read_attempts = max(read_attempts, 1)
        self._http = aiohttp.ClientSession(
            base_url=self.base_url,
            connector=connector,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = (),
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        attempts = self._read_attempts if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                async with self._http.request(
                    method, path, params=list(params) or None, data=content, headers=headers
                ) as response:
                    return Answer(
                        response.status, await response.read(), response.headers.get("Retry-After")
                    )
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                if attempt == attempts:
                    raise _unreachable(self.base_url, exc) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    async def stream_lines(
        self, path: str, *, params: Params = (), headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[str]:
        try:
            async with self._http.get(
                path,
                params=list(params) or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None),
            ) as response:
                if response.status != 200:
                    raise StreamRefused(
                        Answer(
                            response.status,
                            await response.read(),
                            response.headers.get("Retry-After"),
                        )
                    )
                async for raw in response.content:
                    yield raw.decode().rstrip("\r\n")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def aclose(self) -> None:
        await self._http.close()
