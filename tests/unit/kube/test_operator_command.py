"""`cerebelum operator`'s options reach the operator's configuration; `operator` and `dev` default to safe;
with no cluster to talk to it says where it looked, in one line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cerebelum_operator import server as server_module
from cerebelum_operator.cli.main import app
from cerebelum_operator.kube import operator as operator_module
from cerebelum_operator.kube.client import NoKubeConfig, load_kube_config
from cerebelum_operator.kube.operator import EXIT_NO_KUBECONFIG, OperatorConfig

ROOT = Path(__file__).resolve().parents[3]
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def _operator_without_a_cluster(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`cerebelum operator` as a user runs it on a machine with no kubeconfig and outside any pod."""
    clean = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    return subprocess.run(
        [sys.executable, "-m", "cerebelum_operator.cli", "operator", "--db", f"sqlite:///{home / 'e.db'}"],
        env={**clean, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(os.path.exists(SERVICE_ACCOUNT), reason="runs in a pod")
def test_the_operator_with_no_cluster_configured_says_where_it_looked_in_one_line_and_exits_non_zero(
    tmp_path: Path,
) -> None:
    result = _operator_without_a_cluster(tmp_path)

    assert result.returncode == EXIT_NO_KUBECONFIG, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot find a Kubernetes configuration: not in a pod"), line
    assert f"no {SERVICE_ACCOUNT}/token" in line
    assert f"KUBECONFIG is not set and {tmp_path / '.kube' / 'config'} does not exist" in line
    assert result.stdout == ""


@pytest.mark.skipif(os.path.exists(SERVICE_ACCOUNT), reason="runs in a pod")
def test_the_operator_names_a_kubeconfig_it_was_given_that_does_not_exist(tmp_path: Path) -> None:
    result = _operator_without_a_cluster(tmp_path, KUBECONFIG=str(tmp_path / "nope.yaml"))

    assert result.returncode == EXIT_NO_KUBECONFIG, result.stderr
    (line,) = result.stderr.splitlines()
    assert f"KUBECONFIG={tmp_path / 'nope.yaml'} does not exist" in line


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (": [", "not YAML: expected <block end>, but found ':' at line 1, column 1"),
        ("apiVersion: v1\nkind: Config\n", "it has no 'clusters'"),
        ("apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n", "No current context set"),
    ],
)
def test_an_unusable_kubeconfig_is_named_with_what_is_wrong_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    monkeypatch.setenv("KUBECONFIG", str(path))

    with pytest.raises(NoKubeConfig) as raised:
        load_kube_config(service_account=str(tmp_path / "no-account"))

    assert str(raised.value).startswith(f"the kubeconfig {path} is unusable: {problem}")
    assert "\n" not in str(raised.value)


def test_a_service_account_outside_a_pod_is_not_mistaken_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "account"
    account.mkdir()
    (account / "token").write_text("t")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG")

    with pytest.raises(NoKubeConfig, match=r"not in a pod \(KUBERNETES_SERVICE_HOST is not set\)"):
        load_kube_config(service_account=str(account))


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
        *("--health-address", "127.0.0.1:8081", "--trust-claimed-approver"),
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
    assert config.trust_claimed_approver is True


def test_approvers_are_verified_unless_the_operator_is_told_to_trust_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[OperatorConfig] = []

    async def fake_run(config: OperatorConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(operator_module, "run_operator", fake_run)
    assert CliRunner().invoke(app, ["operator"]).exit_code == 0
    assert seen[0].trust_claimed_approver is False


def test_an_exit_status_from_the_operator_is_the_command_s(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(config: OperatorConfig) -> int:
        return operator_module.EXIT_API_REFUSED

    monkeypatch.setattr(operator_module, "run_operator", refused)
    assert CliRunner().invoke(app, ["operator"]).exit_code == 77


def test_the_operator_asks_every_caller_for_a_token_and_listens_on_loopback_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[OperatorConfig] = []

    async def fake_run(config: OperatorConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(operator_module, "run_operator", fake_run)
    result = CliRunner().invoke(app, ["operator"])

    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.auth == "kubernetes"
    assert config.server.address == "127.0.0.1:7450", "a pod passes 0.0.0.0 explicitly, behind its Service"


def test_the_operator_without_authentication_only_when_asked_and_then_with_a_loud_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[OperatorConfig] = []

    async def fake_run(config: OperatorConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(operator_module, "run_operator", fake_run)
    with caplog.at_level(logging.WARNING, logger="cerebelum"):
        result = CliRunner().invoke(app, ["operator", "--auth", "none", "--address", "0.0.0.0:7450"])

    assert result.exit_code == 0, result.output
    assert seen[0].auth == "none"
    (warning,) = [r for r in caplog.records if r.name == "cerebelum" and r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("INSECURE: --auth none"), warning.getMessage()
    assert "0.0.0.0:7450" in warning.getMessage() and "--auth kubernetes" in warning.getMessage()


@dataclass
class FakeEngineServer:
    """Records the configuration `cerebelum dev` would serve, and serves nothing."""

    configs: list[Any] = field(default_factory=list)

    def __call__(self, config: Any) -> FakeEngineServer:
        self.configs.append(config)
        return self

    async def serve_until_signalled(self) -> None:
        return None


@pytest.mark.parametrize("address", ["0.0.0.0:7450", "[::]:7450", "10.1.2.3:7450", "engine.example:7450"])
def test_dev_serves_loopback_by_default_and_refuses_another_address_without_a_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, address: str
) -> None:
    fake = FakeEngineServer()
    monkeypatch.setattr(server_module, "EngineServer", fake)
    monkeypatch.delenv("CEREBELUM_TOKEN", raising=False)
    db = f"sqlite:///{tmp_path / 'dev.db'}"

    assert CliRunner().invoke(app, ["dev", "--db", db]).exit_code == 0
    assert [c.address for c in fake.configs] == ["127.0.0.1:7450"]

    refused = CliRunner().invoke(app, ["dev", "--db", db, "--address", address])
    assert refused.exit_code == 1 and len(fake.configs) == 1, refused.output
    message = " ".join(refused.output.split())  # the console wraps long lines
    assert f"--address {address} is reachable from other machines" in message
    assert "set --token (16+ characters)" in message

    token = "t" * 16
    assert CliRunner().invoke(app, ["dev", "--db", db, "--address", address, "--token", token]).exit_code == 0
    assert fake.configs[-1].address == address
