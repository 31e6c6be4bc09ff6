"""Connection limits for `tbledger serve`: uvicorn's options, plus a deadline on request heads.

uvicorn closes a keep-alive connection that stays idle (`timeout_keep_alive`), but any byte
cancels that timer, so a client that trickles its request line and headers a byte at a time holds
a connection (and a slot) forever; nor does a fresh connection that sends nothing ever time out.
`http_protocol` wraps uvicorn's HTTP protocol so that a connection whose next request head is not
complete within `header_timeout_s` of its opening (or of its previous response) is closed. A body
that stalls is `GuardMiddleware`'s job (408), once the head is in.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tbledger.limits import (
    HTTP_HEADER_BYTES_MAX,
    HTTP_HEADER_TIMEOUT_S,
    HTTP_KEEP_ALIVE_TIMEOUT_S,
)

__all__ = ["http_protocol", "uvicorn_limits"]


def http_protocol(header_timeout_s: float = HTTP_HEADER_TIMEOUT_S) -> type[asyncio.Protocol]:
    """uvicorn's own HTTP protocol (httptools if installed, else h11) with a head deadline."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol  # noqa: PLC0415 (serve only)

    base: Any = AutoHTTPProtocol

    class HeadDeadlineProtocol(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm_head_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_deadline()

        def _arm_head_deadline(self) -> None:
            # uvicorn starts a new cycle when a request's head is complete; if the cycle is
            # still the one seen now when the deadline passes, no head arrived in time.
            self.loop.call_later(header_timeout_s, self._head_deadline_passed, self.cycle)

        def _head_deadline_passed(self, cycle: object) -> None:
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()

    protocol: type[asyncio.Protocol] = HeadDeadlineProtocol
    return protocol


def uvicorn_limits(
    *,
    header_timeout_s: float = HTTP_HEADER_TIMEOUT_S,
    keep_alive_timeout_s: int = HTTP_KEEP_ALIVE_TIMEOUT_S,
) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` that bound what one connection may hold."""
    return {
        "http": http_protocol(header_timeout_s),
        "timeout_keep_alive": keep_alive_timeout_s,
        # Only the h11 protocol reads it; httptools has its own fixed bounds on a head's size.
        "h11_max_incomplete_event_size": HTTP_HEADER_BYTES_MAX,
    }
