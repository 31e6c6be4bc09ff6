"""tbledger's exception tree: every exception tbledger raises has ``TbledgerError`` at its root.

Outcomes are values, faults are exceptions: a rejected transfer is a result with a status, not an
exception. Exceptions are for configuration, lifecycle, limits, I/O and broken invariants::

    TbledgerError
    ├── ConfigurationError          bad engine URL, bad settings
    ├── JournalError                the embedded engine's journal cannot be used
    │   └── JournalCorruptError     checksum or framing damage before the last record
    └── InvariantViolationError          an internal money invariant failed (a bug; never ignored)

The engine port keeps the official client's own exceptions (``tigerbeetle.TooMuchDataError``,
``tigerbeetle.ClientClosedError``, ``tigerbeetle.IntegerOverflowError``, ...), so code written for
the official client handles the embedded engine unchanged.
"""

from __future__ import annotations


class TbledgerError(Exception):
    """Root of every exception raised by tbledger itself."""


class ConfigurationError(TbledgerError, ValueError):
    """The configuration (an engine URL, a setting) is invalid."""


class JournalError(TbledgerError):
    """The embedded engine's journal could not be opened, read or written."""


class JournalCorruptError(JournalError):
    """The journal is damaged somewhere other than a torn last record; it is refused whole."""


class InvariantViolationError(TbledgerError, AssertionError):
    """A money invariant failed. This is a bug; the engine refuses to continue."""
