"""`cerebelum queue limit NAME RATE`: how a rate is written, and what is refused before any call."""

from __future__ import annotations

import pytest

from cerebelum_operator.cli.queues import parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/s", (10, 1000)),
        ("100/1m", (100, 60_000)),
        ("5/30s", (5, 30_000)),
        (" 1 / 250ms ", (1, 250)),
        ("3/1d", (3, 86_400_000)),
    ],
)
def test_a_rate_is_a_count_per_period(text: str, expected: tuple[int, int]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["10", "ten/s", "10/fortnight", "0/s", "1/2d", "1/0s"])
def test_a_rate_that_is_not_one_or_out_of_bounds_is_refused_saying_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"rate|at least 1 task"):
        parse_rate(text)
