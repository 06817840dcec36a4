"""The hibernation scenario with most sleepers copied in the store (`--api-starts`), at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "cerebelum_runner.py"


@pytest.mark.slow
def test_copied_sleepers_sleep_and_wake_like_the_ones_started_through_the_api(tmp_path: Path) -> None:
    out = tmp_path / "hibernation.json"
    command = [sys.executable, str(RUNNER), "--scenario", "hibernation", "--quick", "--size", "300"]
    finished = subprocess.run(
        [*command, "--api-starts", "40", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    result = json.loads(out.read_text())

    figures: dict[str, Any] = result["figures"]
    # The runner counts 300 asleep in each wave, then waits for 300 Succeeded after the wake: the 260
    # copies in each wave were woken by the engine and ran their next step like the 40 others.
    assert figures["executions"] == 300
    assert figures["api_starts"] == 40
    assert figures["timers_per_s"] > 0
    assert figures["wake_s"] > 0
    assert "260 are copies" in result["notes"]
