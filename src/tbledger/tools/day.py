"""A seeded day of activity, played through a running service's flows: something to look at.

`run_day` fills a service with one working day of a small town's money, through the HTTP API
and an admin key (`tbledger demo --day`): the morning's payroll deposits, coffee, books and
groceries paid with the merchants' fees, a book refunded in part, holds that are posted, voided,
captured in part or left open with hours to run (the console counts them down), a deposit held in
escrow and released in part, dollars exchanged for euros at the operator's rate, a withdrawal to
a bank and the café's payout. The same seed gives the same day: the same accounts, amounts and
order, each write with an idempotency key of its own, so an interrupted run started again with
the same key replays what was done instead of doing it twice. Times are the engine's, when the
day is played: a day's story told in seconds.

Accounts are named ``<handle>@day<seed>`` (``alice@day1``), owned by plain owner ids (``alice``,
``cafe-co``): an owner key for ``alice`` sees Alice's accounts of every seeded day, and no one
else's.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from tbledger.client import AsyncLedgerClient, FlowResult, TransferResult, TransferSpec
from tbledger.errors import AccountNotFoundError, TbledgerError

__all__ = ["CUSTOMERS", "MERCHANTS", "DayAlreadySeededError", "DayReport", "run_day"]

USD: Final = "USD"
EUR: Final = "EUR"

# handle -> owner id. Alice also keeps euros.
CUSTOMERS: Final = {"alice": "alice", "bob": "bob", "carol": "carol", "dave": "dave"}
# handle -> (owner id, fee in basis points, fixed fee, who pays it); None: the platform default.
MERCHANTS: Final[dict[str, tuple[str, tuple[int, str, str] | None]]] = {
    "corner-cafe": ("cafe-co", (150, "0.05", "payer")),
    "bookshop": ("books-ltd", (250, "0.00", "merchant")),
    "grocer": ("fresh-foods", None),
    "harbour-hotel": ("harbour-hotels", (100, "0.00", "merchant")),
}
# Hours a hold left open runs for, so the console has something to count down.
OPEN_HOLD_TIMEOUT_S: Final = {"hotel": 12 * 3600, "cafe-tab": 2 * 3600}


class DayAlreadySeededError(TbledgerError):
    """The service already holds this seed's day (played with another key)."""


@dataclass
class DayReport:
    """What the day made: its accounts and notable transfers by name, and when it ran (engine
    timestamps, ns)."""

    seed: int
    accounts: dict[str, str] = field(default_factory=dict)
    transfers: dict[str, str] = field(default_factory=dict)
    open_holds: list[str] = field(default_factory=list)
    started_ns: int = 0
    ended_ns: int = 0
    writes: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "accounts": dict(self.accounts),
            "transfers": dict(self.transfers),
            "open_holds": list(self.open_holds),
            "started_ns": str(self.started_ns),
            "ended_ns": str(self.ended_ns),
            "writes": self.writes,
        }


def _cents(rng: random.Random, low: str, high: str) -> Decimal:
    """A deterministic amount between `low` and `high` (inclusive), to the cent."""
    low_c, high_c = int(Decimal(low) * 100), int(Decimal(high) * 100)
    return Decimal(rng.randint(low_c, high_c)).scaleb(-2)


class _Day:
    """One run: the client, the seed's random numbers, and what has been made so far."""

    def __init__(self, client: AsyncLedgerClient, seed: int, out: Callable[[str], None]) -> None:
        self.client = client
        self.seed = seed
        self.rng = random.Random(seed)
        self.out = out
        self.report = DayReport(seed=seed)

    def key(self, step: str) -> str:
        self.report.writes += 1
        return f"day{self.seed}:{step}"

    def name(self, handle: str) -> str:
        return f"{handle}@day{self.seed}"

    def account(self, handle: str) -> str:
        return self.report.accounts[handle]

    def saw(self, results: list[TransferResult]) -> None:
        for result in results:
            if result.timestamp is None:
                continue
            stamp = int(result.timestamp)
            if not self.report.started_ns:
                self.report.started_ns = stamp
            self.report.ended_ns = max(self.report.ended_ns, stamp)

    def flow(self, result: FlowResult[Any]) -> FlowResult[Any]:
        self.saw(result.transfers)
        return result

    def say(self, clock: str, text: str) -> None:
        self.out(f"{clock}  {text}")

    # -- the day ----------------------------------------------------------------------------------

    async def play(self) -> DayReport:
        await self.check_fresh()
        await self.open_accounts()
        await self.set_prices()
        await self.payroll()
        await self.coffee()
        await self.holds_resolved()
        await self.books()
        await self.refund()
        await self.escrow()
        await self.groceries()
        await self.exchange()
        await self.holds_left_open()
        await self.evening()
        return self.report

    async def check_fresh(self) -> None:
        try:
            await self.client.account_by_name(self.name("alice"))
        except AccountNotFoundError:
            return
        raise DayAlreadySeededError(
            f"this service already holds the day of seed {self.seed} "
            f"(account {self.name('alice')!r}); play another with --seed"
        )

    async def open_accounts(self) -> None:
        for handle, owner in CUSTOMERS.items():
            await self.open(handle, owner, "user", USD)
        await self.open("alice-eur", "alice", "user", EUR)
        for handle, (owner, _) in MERCHANTS.items():
            await self.open(handle, owner, "merchant", USD)
        self.say("06:00", f"opened {len(self.report.accounts)} accounts")

    async def open(self, handle: str, owner: str, account_type: str, ledger: str) -> None:
        opened = await self.client.create_account(
            ledger=ledger,
            account_type=account_type,
            owner_id=owner,
            name=self.name(handle),
            metadata={"seeded_day": self.seed},
            idempotency_key=self.key(f"open:{handle}"),
        )
        self.report.accounts[handle] = opened.id

    async def set_prices(self) -> None:
        for handle, (_, fee) in MERCHANTS.items():
            if fee is None:
                continue
            bps, fixed, payer = fee
            await self.client.set_fee_schedule(
                self.account(handle), fee_bps=bps, fee_fixed=Decimal(fixed), fee_payer=payer
            )
        rate = Decimal("0.9100") + Decimal(self.rng.randint(0, 80)) / 10_000
        await self.client.set_rate(
            source_ledger=USD, target_ledger=EUR, rate=rate, source=f"seeded day {self.seed}"
        )
        funded = self.flow(
            await self.client.fund_liquidity(
                amount=Decimal("25000.00"), ledger=EUR, idempotency_key=self.key("liquidity:EUR")
            )
        )
        self.say("06:30", f"USD->EUR at {rate}; EUR liquidity {funded.amount}")

    async def payroll(self) -> None:
        wages = {"alice": ("2800", "3400"), "bob": ("2100", "2600"), "carol": ("1500", "1900")}
        wages["dave"] = ("800", "1100")
        for handle, (low, high) in wages.items():
            amount = _cents(self.rng, low, high)
            self.flow(
                await self.client.deposit(
                    account_id=self.account(handle),
                    amount=amount,
                    ledger=USD,
                    event_id=f"payroll-day{self.seed}",
                    idempotency_key=self.key(f"payroll:{handle}"),
                )
            )
            self.say("07:00", f"payroll  {handle:<6} +{amount} USD")

    async def pay(self, label: str, payer: str, merchant: str, amount: Decimal) -> FlowResult[Any]:
        result = self.flow(
            await self.client.pay(
                payer_id=self.account(payer),
                merchant_id=self.account(merchant),
                amount=amount,
                ledger=USD,
                payment_id=f"day{self.seed}-{label}",
                idempotency_key=self.key(f"pay:{label}"),
            )
        )
        return result

    async def coffee(self) -> None:
        """The morning's coffee, a dozen cups across the town, each with the café's fee."""
        customers = list(CUSTOMERS)
        for cup in range(12):
            payer = customers[self.rng.randrange(len(customers))]
            amount = _cents(self.rng, "3.20", "6.80")
            paid = await self.pay(f"coffee-{cup}", payer, "corner-cafe", amount)
            self.say("08:15", f"coffee   {payer:<6} -{amount} USD (fee {paid.details.fee})")

    async def books(self) -> None:
        """Books at lunch; Carol's is the one she brings back in the afternoon."""
        for index, payer in enumerate(("carol", "bob", "alice")):
            amount = _cents(self.rng, "12.00", "39.00")
            paid = await self.pay(f"book-{index}", payer, "bookshop", amount)
            if index == 0:
                self.report.transfers["book-payment"] = paid.transfers[0].id
            self.say("12:30", f"books    {payer:<6} -{amount} USD")

    async def groceries(self) -> None:
        for index, payer in enumerate(("alice", "dave", "bob", "carol")):
            amount = _cents(self.rng, "24.00", "118.00")
            await self.pay(f"groceries-{index}", payer, "grocer", amount)
            self.say("17:45", f"grocer   {payer:<6} -{amount} USD")

    async def hold(
        self, label: str, payer: str, merchant: str, amount: Decimal, timeout_s: int
    ) -> str:
        placed = await self.client.create_pending_transfer(
            TransferSpec(
                debit_account_id=self.account(payer),
                credit_account_id=self.account(merchant),
                amount=amount,
                ledger=USD,
                timeout_s=timeout_s,
                payment_id=f"day{self.seed}-{label}",
                metadata={"what": label},
            ),
            idempotency_key=self.key(f"hold:{label}"),
        )
        self.saw([placed])
        return placed.id

    async def holds_resolved(self) -> None:
        """Holds of the morning: one captured in part, one posted in full, one voided."""
        # A fuel pump authorizes 80.00 and captures what was pumped.
        pump = await self.hold("fuel", "bob", "grocer", Decimal("80.00"), 3600)
        pumped = _cents(self.rng, "41.00", "63.00")
        captured = await self.client.post_pending_transfer(
            pump, amount=pumped, idempotency_key=self.key("capture:fuel")
        )
        self.saw([captured])
        self.report.transfers["partial-capture-hold"] = pump
        self.report.transfers["partial-capture"] = captured.id
        self.say("09:10", f"hold     bob    80.00 at the pump, {pumped} captured")
        # A delivery's hold, posted in full on arrival.
        delivery = await self.hold("delivery", "dave", "grocer", Decimal("60.00"), 3600)
        posted = await self.client.post_pending_transfer(
            delivery, idempotency_key=self.key("post:delivery")
        )
        self.saw([posted])
        self.say("10:00", "hold     dave   60.00 for a delivery, posted in full")
        # A reserved book nobody collects: the hold is voided.
        reserved = await self.hold("reservation", "carol", "bookshop", Decimal("40.00"), 3600)
        voided = await self.client.void_pending_transfer(
            reserved, idempotency_key=self.key("void:reservation")
        )
        self.saw([voided])
        self.report.transfers["voided-hold"] = reserved
        self.say("11:00", "hold     carol  40.00 reserved, voided")

    async def holds_left_open(self) -> None:
        """Two holds still open at the day's end, with hours to run."""
        hotel = await self.hold(
            "hotel", "alice", "harbour-hotel", Decimal("250.00"), OPEN_HOLD_TIMEOUT_S["hotel"]
        )
        tab = await self.hold(
            "cafe-tab", "alice", "corner-cafe", Decimal("15.00"), OPEN_HOLD_TIMEOUT_S["cafe-tab"]
        )
        self.report.open_holds.extend([hotel, tab])
        self.say("19:00", "hold     alice  250.00 at the hotel and 15.00 on a café tab, open")

    async def refund(self) -> None:
        amount = Decimal("5.00") + _cents(self.rng, "0", "5")
        refunded = self.flow(
            await self.client.refund(
                payment_id=f"day{self.seed}-book-0",
                payer_id=self.account("carol"),
                amount=amount,
                idempotency_key=self.key("refund:book-0"),
            )
        )
        self.report.transfers["refund"] = refunded.transfers[0].id
        self.say("15:20", f"refund   carol  +{amount} USD from the bookshop")

    async def escrow(self) -> None:
        contract = f"day{self.seed}-room-deposit"
        self.flow(
            await self.client.escrow_lock(
                contract_id=contract,
                payer_id=self.account("dave"),
                amount=Decimal("150.00"),
                ledger=USD,
                idempotency_key=self.key("escrow:lock"),
            )
        )
        released = self.flow(
            await self.client.escrow_release(
                contract_id=contract,
                merchant_id=self.account("harbour-hotel"),
                payer_id=self.account("dave"),
                amount=Decimal("100.00"),
                idempotency_key=self.key("escrow:release"),
            )
        )
        self.flow(
            await self.client.escrow_void(
                contract_id=contract,
                payer_id=self.account("dave"),
                idempotency_key=self.key("escrow:void"),
            )
        )
        self.report.transfers["escrow-release"] = released.transfers[0].id
        self.say("16:00", "escrow   dave   150.00 locked, 100.00 to the hotel, 50.00 back")

    async def exchange(self) -> None:
        amount = _cents(self.rng, "150", "300")
        exchanged = self.flow(
            await self.client.exchange(
                source_account_id=self.account("alice"),
                target_account_id=self.account("alice-eur"),
                amount=amount,
                source_ledger=USD,
                target_ledger=EUR,
                idempotency_key=self.key("exchange"),
            )
        )
        self.report.transfers["exchange"] = exchanged.transfers[0].id
        self.say(
            "18:10",
            f"exchange alice  {amount} USD -> {exchanged.details.target_amount} EUR "
            f"at {exchanged.details.rate}",
        )

    async def evening(self) -> None:
        amount = _cents(self.rng, "150", "320")
        self.flow(
            await self.client.withdraw(
                account_id=self.account("carol"),
                amount=amount,
                ledger=USD,
                idempotency_key=self.key("withdrawal:carol"),
            )
        )
        self.say("20:00", f"withdraw carol  -{amount} USD to her bank")
        settled = self.flow(
            await self.client.settle(
                merchant_id=self.account("corner-cafe"),
                ledger=USD,
                idempotency_key=self.key("settle:corner-cafe"),
            )
        )
        self.say("22:00", f"payout   corner-cafe {settled.amount} USD settled")


async def run_day(
    client: AsyncLedgerClient, *, seed: int = 1, out: Callable[[str], None] = print
) -> DayReport:
    """Play the day of `seed` on the service `client` talks to (with an admin key)."""
    day = _Day(client, seed, out)
    report = await day.play()
    out(f"played {report.writes} writes for the day of seed {seed}")
    return report
