"""`OutageLog`: one warning when an outage starts, one line when it ends, nothing in between."""

from __future__ import annotations

import logging

import pytest

from cerebelum_operator.runtime.outage import OutageLog


def test_an_outage_is_reported_once_when_it_starts_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    outage = OutageLog(logging.getLogger("test.outage"), what="the store is unavailable", recovered="it is back")
    with caplog.at_level("INFO", logger="test.outage"):
        outage.succeeded()  # no outage yet: nothing to say
        for _ in range(50):
            outage.failed(ConnectionError("refused"))
        assert outage.down
        outage.succeeded()
        outage.succeeded()
        outage.failed(ConnectionError("again"))
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "the store is unavailable (refused)"),
        ("INFO", "it is back"),
        ("WARNING", "the store is unavailable (again)"),
    ]
