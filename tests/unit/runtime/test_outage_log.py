"""One warning per outage, one notice when it ends, however many calls fail in between."""

from __future__ import annotations

import logging

import pytest

from cerebelum_operator.runtime import FakeClock, OutageLog

log = logging.getLogger("tests.outage")


def outage_log() -> tuple[OutageLog, FakeClock]:
    clock = FakeClock()
    return OutageLog(
        log, down="the store is down ({error})", back="the store is back after {seconds} s", clock=clock
    ), clock


async def test_a_thousand_failures_in_one_outage_are_one_warning_and_the_end_one_notice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage, clock = outage_log()
    with caplog.at_level(logging.INFO, logger="tests.outage"):
        outage.succeeded()  # no outage: nothing to say
        for _ in range(1000):
            outage.failed(ConnectionError("disk full"))
        assert outage.ongoing
        await clock.advance(12.5)
        outage.succeeded()
        outage.succeeded()
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "the store is down (disk full)"),
        (logging.INFO, "the store is back after 12.5 s"),
    ]
    assert not outage.ongoing


def test_a_second_outage_is_warned_about_again(caplog: pytest.LogCaptureFixture) -> None:
    outage, _ = outage_log()
    with caplog.at_level(logging.INFO, logger="tests.outage"):
        outage.failed(ConnectionError("one"))
        outage.succeeded()
        outage.failed(ConnectionError("two"))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "the store is down (one)",
        "the store is down (two)",
    ]
