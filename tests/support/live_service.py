"""Serve the HTTP API on a free loopback port in a background thread, for tests that need a real
socket (the CLI, the load generator)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from tbledger.api import create_app
from tbledger.config import Settings
from tests.support.tbserver import free_port


@contextlib.contextmanager
def live_service(settings: Settings, *, background: bool = True) -> Iterator[str]:
    """Start the app over `settings`, wait until it answers /healthz, yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, background=background),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    deadline = time.monotonic() + 20
    while True:
        assert thread.is_alive(), "the service stopped during start-up"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200 and server.started:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
