"""Durations written as seconds, timedeltas or strings like "1h30m"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cerebelum import parse_duration
from cerebelum.durations import duration_ms


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("3d", 259_200),
        ("1.5s", 1.5),
        ("1m30s250ms", 90.25),
        ("0s", 0),
    ],
)
def test_duration_strings_add_up_their_parts(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_numbers_are_seconds_and_timedeltas_are_converted() -> None:
    assert parse_duration(2) == 2.0
    assert parse_duration(0.25) == 0.25
    assert parse_duration(timedelta(minutes=2)) == 120.0
    assert duration_ms(timedelta(milliseconds=1500)) == 1500
    assert duration_ms(0.0004) == 0


@pytest.mark.parametrize("bad", ["", "10", "1x", "h", "1h 30", "-1s", "1.s"])
def test_malformed_duration_strings_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_negative_and_non_numeric_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="not negative"):
        parse_duration(-1)
    with pytest.raises(ValueError, match="not negative"):
        parse_duration(timedelta(seconds=-1))
    with pytest.raises(TypeError, match="duration"):
        parse_duration(True)
