"""The worker chart: lint, wiring to the operator's release, bad values refused, accepted by the API server."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.control_plane import ControlPlane
from tests.support.helm import KUBE_VERSION, helm

WORKER_CHART = Path(__file__).resolve().parents[2] / "charts" / "cerebelum-worker"


def render(
    *values: str, release: str = "provision-worker", namespace: str = "cerebelum-system"
) -> list[dict[str, Any]]:
    out = helm("template", release, str(WORKER_CHART), "-n", namespace, "--kube-version", KUBE_VERSION, *values)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    only: dict[str, Any]
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("values", [[], ["--set", "engine.projectedToken=true", "--set", "taskQueue=infra"]])
def test_the_worker_chart_lints_cleanly(values: list[str]) -> None:
    result = helm("lint", str(WORKER_CHART), "--strict", "--kube-version", KUBE_VERSION, *values, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workers_connect_to_the_operator_release_by_default_and_to_a_token_when_given() -> None:
    env = {e["name"]: e for e in container(render())["env"]}
    assert env["CEREBELUM_ADDRESS"]["value"] == "cerebelum.cerebelum-system.svc:7450", "the operator chart's Service"
    assert "CEREBELUM_TOKEN" not in env
    with_token = container(render("--set", "engine.tokenSecret.name=worker-token", "--set", "taskQueue=infra"))
    env = {e["name"]: e for e in with_token["env"]}
    assert env["CEREBELUM_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "worker-token", "key": "token"}
    assert env["CEREBELUM_TASK_QUEUE"]["value"] == "infra"
    assert with_token["securityContext"]["readOnlyRootFilesystem"] is True
    assert with_token["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_a_mistyped_worker_value_fails_naming_it() -> None:
    result = helm("template", "w", str(WORKER_CHART), "--set", "replcas=2", check=False)
    assert result.returncode != 0
    assert "additional properties 'replcas' not allowed" in result.stderr


@pytest.mark.kube
def test_the_worker_chart_manifests_are_accepted_by_the_api_server(control_plane: ControlPlane) -> None:
    namespace = f"workers-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", namespace)
    manifests = yaml.safe_dump_all(render("--set", "engine.projectedToken=true", namespace=namespace))
    applied = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifests, check=False)
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/provision-worker created" in applied.stdout


CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def test_given_the_engine_s_ca_workers_dial_tls_and_verify_it_from_a_mounted_config_map() -> None:
    docs = render("--set-json", f"engine.tls.ca={json.dumps(CA)}", "--set", "engine.tls.serverName=engine.internal")
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["name"] == "provision-worker-engine-ca"
    assert config_map["data"]["ca.crt"].strip() == CA.strip()
    worker = container(docs)
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["CEREBELUM_TLS"] == "true" and env["CEREBELUM_TLS_CA"] == "/etc/cerebelum/tls/ca.crt"
    assert env["CEREBELUM_TLS_SERVER_NAME"] == "engine.internal"
    assert {"name": "engine-ca", "mountPath": "/etc/cerebelum/tls", "readOnly": True} in worker["volumeMounts"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["engine-ca"]["configMap"]["name"] == "provision-worker-engine-ca"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            ["--set-json", f"engine.tls.ca={json.dumps(CA)}", "--set", "engine.tls.caSecret.name=engine-ca"],
            "engine.tls.ca and engine.tls.caSecret.name both give the engine's CA: set only one",
        ),
        (["--set", "engine.tls.ca=not a certificate"], "at '/engine/tls/ca'"),
    ],
    ids=["two-cas", "not-pem"],
)
def test_a_contradictory_or_malformed_engine_ca_is_refused(values: list[str], complaint: str) -> None:
    result = helm("template", "w", str(WORKER_CHART), "--kube-version", KUBE_VERSION, *values, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr
