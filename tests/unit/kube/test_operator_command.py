"""`cerebelum operator`'s options reach the operator's configuration."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from cerebelum_operator.cli.main import app
from cerebelum_operator.kube import operator as operator_module
from cerebelum_operator.kube.operator import OperatorConfig


def test_every_operator_option_reaches_its_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[OperatorConfig] = []

    async def fake_run(config: OperatorConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(operator_module, "run_operator", fake_run)
    args: list[Any] = [
        "operator",
        *("--address", "127.0.0.1:9999", "--db", "sqlite:////tmp/x.db", "-n", "team-a", "-n", "team-b"),
        *("--lease-namespace", "ops", "--lease-name", "lead", "--identity", "pod-1", "--lease-duration", "9"),
        *("--status-interval", "0.25", "--api-qps", "12", "--max-payload-bytes", "4096"),
        *("--health-address", "127.0.0.1:8081"),
    ]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.server.address == "127.0.0.1:9999"
    assert config.server.database_url == "sqlite:////tmp/x.db"
    assert config.server.max_payload_bytes == 4096
    assert config.namespaces == ("team-a", "team-b")
    assert (config.lease_namespace, config.lease_name, config.identity) == ("ops", "lead", "pod-1")
    assert (config.lease_duration_s, config.status_interval_s, config.api_writes_per_second) == (9, 0.25, 12.0)
    assert config.health_address == "127.0.0.1:8081"


def test_an_exit_status_from_the_operator_is_the_command_s(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(config: OperatorConfig) -> int:
        return operator_module.EXIT_API_REFUSED

    monkeypatch.setattr(operator_module, "run_operator", refused)
    assert CliRunner().invoke(app, ["operator"]).exit_code == 77
