"""`cerebelum operator`'s time-to-live and retention options (issue 19): they reach the configuration,
and a combination that would leave objects without their histories is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cerebelum_operator.cli.main import app
from cerebelum_operator.kube import operator as operator_module
from cerebelum_operator.kube.operator import OperatorConfig


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[OperatorConfig]:
    configs: list[OperatorConfig] = []

    async def fake_run(config: OperatorConfig) -> int:
        configs.append(config)
        return 0

    monkeypatch.setattr(operator_module, "run_operator", fake_run)
    return configs


def test_the_time_to_live_and_the_store_retention_reach_the_operators_configuration(
    seen: list[OperatorConfig], tmp_path: Path
) -> None:
    args = ["operator", "--execution-ttl", "2h", "--retention", "30d", "--retention-export", str(tmp_path)]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.execution_ttl_ms == 2 * 3_600_000
    assert config.server.retention_ms == 30 * 86_400_000
    assert config.server.retention_export == tmp_path


def test_by_default_the_operator_keeps_objects_and_histories_for_ever(seen: list[OperatorConfig]) -> None:
    assert CliRunner().invoke(app, ["operator"]).exit_code == 0
    assert seen[0].execution_ttl_ms is None and seen[0].server.retention_ms is None


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--retention", "1h", "--execution-ttl", "2h"],
            "error: the Execution objects' time-to-live (2h) is longer than the store's retention period (1h)",
        ),
        (
            ["--retention", "1h"],
            "error: the Execution objects' time-to-live (never) is longer than the store's retention period (1h)",
        ),
        (["--execution-ttl", "soon"], "error: --execution-ttl: bad duration 'soon'"),
        (["--retention-export", "/tmp/x"], "error: --retention-export writes what --retention removes"),
    ],
)
def test_a_combination_that_would_leave_objects_without_histories_is_refused_in_one_line(
    seen: list[OperatorConfig], args: list[str], said: str
) -> None:
    result = CliRunner().invoke(app, ["operator", *args])

    assert result.exit_code == 1, result.output
    assert said in " ".join(result.output.split()), result.output
    assert seen == [], "refused before anything starts"
