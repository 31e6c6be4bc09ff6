"""tbledger: run money on TigerBeetle from Python.

The public API is what this module exports. The engine port is the official ``tigerbeetle``
client's API; ``tbledger.embedded`` is a drop-in TigerBeetle twin that runs it in-process.
"""

from tbledger.embedded import ClientAsync, ClientSync, ManualClock
from tbledger.engine import EngineConfig, connect, connect_sync, parse_engine_url
from tbledger.errors import (
    ConfigurationError,
    InvariantViolationError,
    JournalCorruptError,
    JournalError,
    TbledgerError,
)

__version__ = "0.1.0"

__all__ = [
    "ClientAsync",
    "ClientSync",
    "ConfigurationError",
    "EngineConfig",
    "InvariantViolationError",
    "JournalCorruptError",
    "JournalError",
    "ManualClock",
    "TbledgerError",
    "__version__",
    "connect",
    "connect_sync",
    "parse_engine_url",
]
