"""Reconnect backoff is jittered, so workers that lost the engine together do not return together."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cerebelum.backoff import Backoff

SDK = Path(__file__).resolve().parents[2] / "worker-sdk" / "python" / "src" / "cerebelum"


def test_each_delay_is_the_random_fraction_of_a_ceiling_that_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(0.1, 1.0, random=lambda: 0.5)

    delays = [backoff.next() for _ in range(6)]

    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5])


def test_reset_brings_the_ceiling_back_to_the_initial_delay() -> None:
    backoff = Backoff(0.1, 5.0, random=lambda: 0.999)
    for _ in range(5):
        backoff.next()
    backoff.reset()

    assert backoff.ceiling == 0.1
    assert backoff.next() == pytest.approx(0.0999)


def test_workers_with_their_own_random_sources_do_not_retry_in_lockstep() -> None:
    workers = [Backoff(random=random.Random(seed).random) for seed in range(50)]

    rounds = [[worker.next() for worker in workers] for _ in range(8)]

    for ceiling, delays in zip([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0], rounds, strict=True):
        assert all(0 <= delay < ceiling for delay in delays)
        assert len({round(delay, 6) for delay in delays}) == len(delays)  # nobody at the same instant


def test_the_default_backoff_is_jittered() -> None:
    delays = {Backoff().next() for _ in range(20)}

    assert len(delays) > 1


@pytest.mark.parametrize(("initial", "maximum"), [(0, 1), (-1, 1), (2, 1)])
def test_a_backoff_without_a_positive_range_is_refused(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="0 < initial <= maximum"):
        Backoff(initial, maximum)


def test_no_sdk_module_builds_an_rpc_path_by_hand_the_generated_stubs_do() -> None:
    handwritten = [
        path.name
        for path in SDK.glob("*.py")  # the generated code lives in v1/, not here
        if "/cerebelum.v1." in path.read_text()
    ]

    assert handwritten == []
