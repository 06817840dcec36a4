"""The TypeScript SDK's docs: samples are the files the tests run, and claims say what is true."""

from __future__ import annotations

import re

from tests.support.processes import ROOT

from .conftest import PACKAGE

GUIDE = ROOT / "docs" / "typescript-sdk.md"
SAMPLE = PACKAGE / "test" / "samples" / "testing-steps.test.ts"
PRECISE = "`cerebelum describe` shows the latest progress of a running step"


def test_the_guide_shows_the_testing_sample_exactly_as_npm_test_runs_it() -> None:
    section = GUIDE.read_text().split("## Testing steps", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```ts\n(.*?)```", section, re.DOTALL)
    assert blocks == [SAMPLE.read_text()]
    assert "build/test/samples/" in (PACKAGE / "package.json").read_text(), "npm test runs the samples"


def test_heartbeat_progress_is_described_as_the_latest_progress_of_a_running_step() -> None:
    for path in (PACKAGE / "README.md", PACKAGE / "src" / "context.ts", GUIDE):
        text = " ".join(path.read_text().split()).replace("* ", "")
        assert "shown by `cerebelum describe`" not in text, path
        assert PRECISE in text, path


def test_the_stack_trace_claims_say_where_the_trace_goes() -> None:
    readme = PACKAGE / "README.md"
    assert "message and stack trace (also written to the worker's log)" in readme.read_text()
    assert "stack trace (sent with the failure and written to the worker's log)" in GUIDE.read_text()
