"""Store records with every field a test does not care about filled in.

`intent` is a valid transfer intent: a fresh id, an amount of 100 from account 1 to account 2 on
ledger 1 with code 1; keyword arguments replace any field.
"""

from __future__ import annotations

from typing import Any

from tbledger.ids import new_id
from tbledger.model import TransferIntent


def intent(**fields: Any) -> TransferIntent:
    """A transfer intent with a fresh id; `fields` replace the defaults."""
    values: dict[str, Any] = {
        "id": new_id(),
        "debit_account_id": 1,
        "credit_account_id": 2,
        "amount": 100,
        "ledger": 1,
        "code": 1,
    }
    values.update(fields)
    return TransferIntent(**values)
