"""`every`: work done again and again on the injected clock, a failure logged and tried again."""

from __future__ import annotations

import asyncio

import pytest

from cerebelum_operator.runtime import FakeClock, every
from tests.support.waiting import eventually


async def test_the_work_runs_once_a_period_and_a_failed_round_does_not_end_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    rounds: list[float] = []

    async def work() -> None:
        rounds.append(clock.now_s())
        if len(rounds) == 2:
            raise OSError("the store is away")

    loop = asyncio.create_task(every(clock, 2.0, work, what="reading the settings"))
    try:
        await clock.wait_for_sleepers(1)
        assert rounds == [], "nothing before the first period"
        for expected in (1, 2, 3):
            await clock.advance(2.0)
            await eventually(lambda n=expected: len(rounds) == n, what=f"round {expected}")  # type: ignore[misc]
            await clock.wait_for_sleepers(1)
        assert [round(at - rounds[0], 3) for at in rounds] == [0.0, 2.0, 4.0]
        assert "reading the settings failed: the store is away" in caplog.text
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
