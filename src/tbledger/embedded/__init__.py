"""The embedded TigerBeetle twin: a drop-in for the official client with TigerBeetle's semantics.

``ClientSync`` and ``ClientAsync`` have the official client's eight methods, argument and return
types and exceptions; they run TigerBeetle's state machine in-process, in memory
(``path=None``) or durably in an fsynced journal (``path="ledger.tbj"``). Use them to run tbledger
without a server and to test code written for the official client::

    from tbledger.embedded import ClientSync
    with ClientSync(cluster_id=0) as client:
        client.create_accounts([...])
"""

from tbledger.embedded.client import ClientAsync, ClientSync, ManualClock, Replica
from tbledger.embedded.state_machine import ChangeRecord, StateMachine

__all__ = ["ChangeRecord", "ClientAsync", "ClientSync", "ManualClock", "Replica", "StateMachine"]
