"""Signed webhooks, delivered at least once from the append-only audit log (DESIGN §10).

`signing` is the Standard Webhooks signature (pure); `policy` the endpoint rules (which URLs may
be called, which events an endpoint sees, the retry schedule; pure); `deliverer` the asyncio
loop that holds a lease per endpoint, POSTs each event in order with httpx and advances the
endpoint's cursor only after a 2xx; `manage` creates, rotates, replays and re-enables endpoints
over the store, for the API and the command line.
"""

from __future__ import annotations
