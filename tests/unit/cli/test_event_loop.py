"""The serving commands' event loop: uvloop unless the environment asks for asyncio's own."""

from __future__ import annotations

import asyncio

import pytest

from cerebelum_operator.cli import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_serving_commands_run_on_uvloop_by_default() -> None:
    assert event_loop.run(_loop_module(), environ={}).startswith("uvloop")


def test_the_environment_can_keep_asyncios_own_loop() -> None:
    assert event_loop.run(_loop_module(), environ={event_loop.EVENT_LOOP_ENV: "asyncio"}).startswith("asyncio")


def test_an_unknown_loop_is_refused_naming_the_choices() -> None:
    with pytest.raises(
        event_loop.EventLoopChoiceError, match=r"CEREBELUM_EVENT_LOOP='trio': choose one of uvloop, asyncio"
    ):
        event_loop.loop_name({event_loop.EVENT_LOOP_ENV: "trio"})


def test_an_oversized_value_is_refused_without_echoing_it_whole() -> None:
    with pytest.raises(event_loop.EventLoopChoiceError) as refused:
        event_loop.loop_name({event_loop.EVENT_LOOP_ENV: "x" * 100_000})
    assert len(str(refused.value)) < 200 and "100000 characters" in str(refused.value)
