"""bench/ui.py --quick: both halves seed their store and measure their UI's pages (or say why not).

2,000 executions and a 1,000-event history per system, two cold loads of each page in the system
Chromium; it checks the shape and sanity of the figures and the report's table, never how fast.
(bench/run.py's own quick test leaves this scenario to this file, so it runs once.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import Result
from bench.report import write_report
from tests.support.browser import missing_browser

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
PAGE_FIGURES = {f"{page}_{key}" for page in ("list", "exec") for key in ("fcp_ms", "ready_ms", "html_kb", "total_kb")}
SEED_FIGURES = {"executions", "history_events", "seed_s"}


def _unavailable(reason: str) -> None:
    """Skip where a dependency is missing, but fail on CI, where the benchmark must be runnable."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _run(system: str, out: Path) -> Result:
    missing = missing_browser()
    if missing:
        _unavailable(missing)
    if system == "temporal":
        built = subprocess.run(
            ["bash", str(ROOT / "bench" / "peers" / "install-temporal.sh")], capture_output=True, text=True, check=False
        )
        if built.returncode != 0:
            _unavailable(f"the temporal CLI is not built: {built.stderr[-2000:]}")
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ui.py"), "--system", system, "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-5000:]
    return Result.read(out)


def _check(result: Result, *, history_at_least: int) -> None:
    assert result.scenario == "ui" and result.failed is None
    assert not SEED_FIGURES - set(result.figures), result.figures
    assert result.figures["executions"] == 2000
    assert result.figures["history_events"] >= history_at_least
    if result.unsupported:
        assert "--ui-address" in result.unsupported
        return
    assert not PAGE_FIGURES - set(result.figures), result.figures
    assert all(result.figures[key] > 0 for key in PAGE_FIGURES), result.figures
    for page in ("list", "exec"):
        assert result.figures[f"{page}_fcp_ms"] <= result.figures[f"{page}_ready_ms"] + 50, result.figures


def test_cerebelum_seeds_a_big_store_and_measures_its_ui_once_it_has_one(tmp_path: Path) -> None:
    result = _run("cerebelum", tmp_path / "cerebelum-ui.json")
    assert result.system == "Cerebelum"
    _check(result, history_at_least=1000)


def test_temporal_seeds_its_dev_server_and_its_web_ui_shows_the_list_and_the_history(tmp_path: Path) -> None:
    result = _run("temporal", tmp_path / "temporal-ui.json")
    assert result.system == "Temporal" and result.unsupported is None
    _check(result, history_at_least=1000)
    doc = tmp_path / "benchmarks.md"
    write_report([result], doc, quick=True, command="python bench/ui.py --quick", wall_s=60)
    text = doc.read_text()
    assert "## Web UI on a big store" in text and "| Temporal |" in text
    assert (tmp_path / "benchmarks" / "ui.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
