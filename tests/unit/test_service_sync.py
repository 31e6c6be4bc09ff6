"""The sync twin runs the async service on a private loop: same methods, same results."""

from __future__ import annotations

import pytest

from tbledger import InsufficientBalanceError, LedgerServiceSync, TransferRequest


def test_sync_service_moves_money_and_raises_typed_errors() -> None:
    with LedgerServiceSync(engine_url="memory://", database_url="sqlite://") as ledger:
        treasury = ledger.create_account(owner_id=None, account_type="treasury", ledger=1)
        alice = ledger.create_account(owner_id="alice", account_type="user", ledger=1)
        bob = ledger.create_account(owner_id="bob", account_type="user", ledger=1)
        deposit = ledger.create_transfer(
            debit_account_id=treasury.id, credit_account_id=alice.id, amount=100, ledger=1, code=1
        )
        assert deposit.ok
        with pytest.raises(InsufficientBalanceError) as refused:
            ledger.create_transfer(
                debit_account_id=alice.id, credit_account_id=bob.id, amount=101, ledger=1, code=3
            )
        assert (refused.value.available, refused.value.requested) == (100, 101)
        results = ledger.create_transfers(
            [
                TransferRequest(
                    debit_account_id=alice.id, credit_account_id=bob.id, amount=10, ledger=1, code=3
                )
            ]
            * 3
        )
        assert [r.status for r in results] == ["created"] * 3
        assert ledger.get_balance(alice.id).available == 70
        assert [e.kind.value for e in ledger.get_transfer_audit(deposit.id)] == [
            "submitted",
            "posted",
        ]
        history = ledger.balance_history(alice.id)
        assert [p.balance.posted for p in history.points] == [0, 100, 90, 80, 70]
        assert ledger.balance_as_of(alice.id, as_of=deposit.timestamp or 1).posted == 100
        assert len(ledger.account_activity(alice.id, counterparty_id=bob.id).entries) == 3
        statement = ledger.statement(alice.id, start=1, end="2200-01-01")
        assert (statement.opening.posted, statement.closing.posted) == (0, 70)
        # Statuses, and what a posted hold captured and released.
        assert ledger.current_status([deposit.id])[deposit.id].kind.value == "posted"
        hold = ledger.create_pending_transfer(
            TransferRequest(
                debit_account_id=alice.id, credit_account_id=bob.id, amount=30, ledger=1, code=3
            )
        )
        ledger.post_pending_transfer(hold.id, 12)
        held = ledger.transfer_statuses([hold.id])[hold.id]
        assert (held.status, held.captured_amount, held.released_amount) == ("posted", 12, 18)
    # Closing twice is harmless; the loop thread is gone.
    ledger.close()
