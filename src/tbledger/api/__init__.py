"""tbledger's HTTP API (FastAPI): `create_app` builds it, ``tbledger serve`` runs it.

Versioned under ``/v1``; OpenAPI at ``/openapi.json``, docs at ``/docs``. Every route but the
health probes needs an API key (`tbledger.api.keys`). See ``docs/api.md``.
"""

from tbledger.api.app import create_app
from tbledger.api.keys import KeyRing, MintedKey, Principal, Scope, mint_key

__all__ = ["KeyRing", "MintedKey", "Principal", "Scope", "create_app", "mint_key"]
