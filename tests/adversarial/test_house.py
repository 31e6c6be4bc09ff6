"""The house itself: what every adversarial test starts from holds."""

from __future__ import annotations

from tests.adversarial.conftest import House


async def test_the_house_starts_with_alice_funded_and_bob_empty(house: House) -> None:
    assert await house.posted(house.A) == "100.00"
    assert await house.posted(house.AE) == "0.00"
    assert await house.posted(house.BM) == "0.00"
