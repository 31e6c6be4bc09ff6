"""The listing filters of the store's discovery reads, the one place their SQL differs by database.

A transfer is found by key/value pairs of the caller's metadata. On PostgreSQL the test is JSONB
containment, ``metadata @> '{"order": "A-17"}'``, which the GIN index ``ix_transfers_metadata``
(``jsonb_path_ops``, revision 0009) answers without reading the table. SQLite has no such index;
each pair is a look through the document's top-level entries with ``json_each`` rather than
``json_extract``: a JSON path cannot name every key (a key holding a double quote has no
spelling in SQLite's paths), while ``json_each`` compares the key as plain text. Both match
string values only, exactly: ``{"n": 17}`` is not found by ``n=17``, which keeps the two
databases' answers the same.

The pairs are checked here before any SQL is built (`checked_pairs`): at most
`METADATA_FILTER_PAIRS_MAX`, keys of 1 to `STORE_TEXT_CHARS_MAX` characters, values of at most
that many, no NUL (no PostgreSQL text holds one).
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from tbledger.errors import LimitExceededError, ValidationError
from tbledger.limits import METADATA_FILTER_PAIRS_MAX, STORE_TEXT_CHARS_MAX
from tbledger.store.tables import accounts, transfers

__all__ = ["checked_pairs", "metadata_holds", "touching_owner"]


def checked_pairs(pairs: Mapping[str, str]) -> dict[str, str]:
    """The pairs as a plain dict, once each key and value is text the stores can compare."""
    if not isinstance(pairs, Mapping):
        raise ValidationError(f"metadata pairs must be a mapping, not {type(pairs).__name__}")
    if not pairs:
        raise ValidationError("at least one metadata key/value pair is needed")
    if len(pairs) > METADATA_FILTER_PAIRS_MAX:
        raise LimitExceededError(
            f"at most {METADATA_FILTER_PAIRS_MAX} metadata pairs per listing, got {len(pairs)}"
        )
    checked = {}
    for key, value in pairs.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValidationError("metadata keys and values to match are strings")
        if not 1 <= len(key) <= STORE_TEXT_CHARS_MAX:
            raise ValidationError(f"a metadata key is 1 to {STORE_TEXT_CHARS_MAX} characters")
        if len(value) > STORE_TEXT_CHARS_MAX:
            raise ValidationError(f"a metadata value is at most {STORE_TEXT_CHARS_MAX} characters")
        if "\x00" in key or "\x00" in value:
            raise ValidationError("metadata keys and values cannot hold NUL (U+0000)")
        checked[key] = value
    return checked


def metadata_holds(dialect: str, pairs: Mapping[str, str]) -> sa.ColumnElement[bool]:
    """A transfer's metadata has every pair of `pairs` (string values, exactly)."""
    if dialect == "postgresql":
        document = sa.type_coerce(transfers.c.metadata, postgresql.JSONB)
        return document.contains(dict(pairs))
    conditions = []
    for key, value in pairs.items():
        entry = sa.func.json_each(transfers.c.metadata).table_valued("key", "atom", "type")
        conditions.append(
            sa.exists()
            .select_from(entry)
            .where(entry.c.key == key, entry.c.type == "text", entry.c.atom == value)
        )
    return sa.and_(*conditions)


def touching_owner(owner_id: str) -> sa.ColumnElement[bool]:
    """A transfer's debit or credit account belongs to `owner_id` (what an owner may see)."""
    owned = sa.select(accounts.c.id).where(accounts.c.owner_id == owner_id)
    return sa.or_(transfers.c.debit_account_id.in_(owned), transfers.c.credit_account_id.in_(owned))
