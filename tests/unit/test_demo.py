"""The README's run command shows a demonstration; it must run and move balances."""

from __future__ import annotations

from tbledger.tools.demo import run_demo


async def test_demo_shows_balances_moving() -> None:
    lines: list[str] = []
    await run_demo("memory://", out=lines.append)
    text = "\n".join(lines)
    assert "EXCEEDS_CREDITS" in text
    assert "partial capture: ['CREATED']" in text
    assert "alice            2000      10000        0       8000" in text
