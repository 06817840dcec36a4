"""Fixtures of the chaos suite, and the summary it prints at the end of every pytest run.

Each chaos test hands its report to ``chaos_reports``; ``pytest_terminal_summary`` prints their
one-line summaries (kill counts, executions, attempts) in a "chaos" section, so CI's output
carries them whether or not output capture is on and whether the tests passed.
"""

from __future__ import annotations

import pytest

from tests.kube.conftest import audit_dir, control_plane, crds, namespace, operator_rbac

from .driver import ChaosReport

# The operator mode's fixtures (a real API server, the CRDs, the chart's RBAC, a namespace per test).
__all__ = ["audit_dir", "control_plane", "crds", "namespace", "operator_rbac"]

_REPORTS: list[ChaosReport] = []


@pytest.fixture
def chaos_reports() -> list[ChaosReport]:
    return _REPORTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _REPORTS:
        return
    terminalreporter.section("chaos")
    for report in _REPORTS:
        terminalreporter.write_line(report.line())
        figures = ", ".join(
            f"{name}={report.summary[name]}"
            for name in ("engine_restart_s", "first_progress_after_kill_s", "failed_attempts_by_error")
        )
        terminalreporter.write_line(f"  {figures}")
