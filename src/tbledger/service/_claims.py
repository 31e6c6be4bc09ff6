"""Claims on transfer ids: which transfers this process is submitting and has not settled.

A call claims its transfers' ids before their intents become visible in the store, so that a
concurrent call with the same id (or a replay of the same idempotency key) waits for the original
instead of submitting it a second time, and so that a recovery pass leaves them to their writer.
A claim points at its call's future and the transfer's place in it; it is released when the
writer settles the call. A caller that stops waiting (a deadline, a cancellation) abandons its
claims to the writer: they stay until the writer settles them, and until then those transfers
must not be recorded as refused by the open circuit (the caller was told "unknown"). The writer
holds the `Claims`; recovery reads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from tbledger.model import TransferIntent
from tbledger.service._values import TransferResult

__all__ = ["Claim", "Claims"]


@dataclass(frozen=True, slots=True)
class Claim:
    """A transfer this process is submitting: its intent, and the future of its call's results
    with the transfer's place in them."""

    intent: TransferIntent
    future: asyncio.Future[list[TransferResult]]
    index: int


class Claims:
    """The claims of this process's calls on transfer ids, and which of them were abandoned."""

    def __init__(self) -> None:
        self._by_id: dict[int, Claim] = {}
        self._abandoned: set[int] = set()

    def __contains__(self, transfer_id: object) -> bool:
        return transfer_id in self._by_id

    def get(self, transfer_id: int) -> Claim | None:
        return self._by_id.get(transfer_id)

    def claim(
        self, intents: Sequence[TransferIntent], future: asyncio.Future[list[TransferResult]]
    ) -> tuple[list[TransferIntent], list[tuple[TransferIntent, Claim]]]:
        """Claim the free ids among `intents` for the call whose results `future` will hold.

        Returns the intents now claimed by this call, in order (their place in `future`'s
        results), and the others with the claim another call holds on them.
        """
        by_id = self._by_id
        own: list[TransferIntent] = []
        taken: list[tuple[TransferIntent, Claim]] = []
        for intent in intents:
            entry = by_id.get(intent.id)
            if entry is None:
                by_id[intent.id] = Claim(intent, future, len(own))
                own.append(intent)
            else:
                taken.append((intent, entry))
        return own, taken

    def release(
        self, intents: Sequence[TransferIntent], future: asyncio.Future[list[TransferResult]]
    ) -> None:
        """Release this call's claims on `intents` (a claim of another call stays)."""
        by_id = self._by_id
        for intent in intents:
            entry = by_id.get(intent.id)
            if entry is not None and entry.future is future:
                del by_id[intent.id]

    def abandon(
        self, intents: list[TransferIntent], future: asyncio.Future[list[TransferResult]]
    ) -> None:
        """The caller stopped waiting (a deadline, a cancellation) while the writer carries on:
        the writer settles the future, for anyone waiting on these ids, and only then are the
        claims released. Until then these transfers must not be recorded as refused by the
        circuit: the caller was not told so, and recovery is to settle them."""
        if future.done():
            self.release(intents, future)
            return
        ids = [i.id for i in intents]
        self._abandoned.update(ids)

        def settled(done: asyncio.Future[list[TransferResult]]) -> None:
            self._abandoned.difference_update(ids)
            self.release(intents, done)

        future.add_done_callback(settled)

    def abandoned(self, transfer_id: int) -> bool:
        """Whether the caller of this claimed transfer stopped waiting for it."""
        return transfer_id in self._abandoned
