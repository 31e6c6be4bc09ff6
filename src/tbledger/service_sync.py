"""Where `LedgerServiceSync` used to live; it is now `tbledger.service.sync` (kept importable)."""

from tbledger.service.sync import LedgerServiceSync

__all__ = ["LedgerServiceSync"]
