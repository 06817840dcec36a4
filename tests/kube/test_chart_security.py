"""The chart's security defaults on a real kube-apiserver: what its RBAC lets the operator's token
do when `watchNamespaces` is set, that the operator runs on that RBAC alone, and that the TLS
certificate Helm generates survives an upgrade (workers trust its CA)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.control_plane import ControlPlane
from tests.support.helm import CHART, helm, render
from tests.support.kube import apply_yaml, kubectl_json, service_account_kubeconfig, wait_for_jsonpath
from tests.support.processes import OperatorProcess

pytestmark = pytest.mark.kube

API = "cerebelum.io/v1alpha1"


@dataclass(frozen=True)
class NamespacedRelease:
    """The chart's ServiceAccount and RBAC for a release that serves `team_a` only."""

    release: str
    namespace: str
    account: str
    team_a: str
    team_b: str
    token: str


@pytest.fixture
def namespaced_release(control_plane: ControlPlane, crds: list[str]) -> NamespacedRelease:
    suffix = uuid.uuid4().hex[:6]
    release, namespace = f"sec-{suffix}", f"sec-{suffix}-system"
    team_a, team_b = f"team-a-{suffix}", f"team-b-{suffix}"
    for name in (namespace, team_a, team_b):
        control_plane.kubectl("create", "namespace", name)
    manifests = render(
        *("--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"),
        *("--set", f"watchNamespaces={{{team_a}}}"),
        release=release,
        namespace=namespace,
    )
    # Every object names its namespace: the Roles are in the served namespaces, not the release's.
    applied = control_plane.kubectl("apply", "-f", "-", input=manifests, check=False)
    assert applied.returncode == 0, applied.stderr
    account = f"{release}-cerebelum"  # the release name does not say "cerebelum"
    token = control_plane.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    return NamespacedRelease(release, namespace, account, team_a, team_b, token)


def document(kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def apply(control_plane: ControlPlane, namespace: str, *documents: dict[str, object]) -> None:
    result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
    assert result.returncode == 0, result.stderr


FLOW: dict[str, object] = {"taskQueue": "test", "timeline": ["only"]}


def patch_execution(control_plane: ControlPlane, token: str, namespace: str, name: str) -> int:
    """The HTTP status of a merge PATCH of an Execution's annotations, sent with `token` alone."""
    url = f"{control_plane.server}/apis/{API}/namespaces/{namespace}/executions/{name}"
    body = json.dumps({"metadata": {"annotations": {"cerebelum.io/probe": "1"}}}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"}
    request = urllib.request.Request(url, data=body, method="PATCH", headers=headers)
    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_with_watch_namespaces_the_operator_serves_its_namespace_and_its_token_is_forbidden_in_any_other(
    control_plane: ControlPlane, namespaced_release: NamespacedRelease, tmp_path: Path
) -> None:
    r = namespaced_release
    for namespace in (r.team_a, r.team_b):
        apply(
            control_plane,
            namespace,
            document("Workflow", "flow", FLOW),
            document("Execution", "run1", {"workflow": "flow", "input": {}}),
        )
    # The operator, on this RBAC alone, serves team-a: compiles, starts, writes status and Events.
    operator = OperatorProcess(
        database_url=f"sqlite:///{tmp_path / 'operator.db'}",
        log_path=tmp_path / "operator.log",
        kubeconfig=service_account_kubeconfig(
            control_plane, tmp_path / "operator.kubeconfig", namespace=r.namespace, account=r.account
        ),
        lease_namespace=r.namespace,
        extra_args=("--namespace", r.team_a, "--lease-name", r.release, "--status-interval", "0.5", "--auth", "none"),
    )
    operator.start()
    try:
        ready = '{.status.conditions[?(@.type=="Ready")].status}'
        wait_for_jsonpath(control_plane, "workflow/flow", r.team_a, ready, "True", timeout=60)
        wait_for_jsonpath(control_plane, "execution/run1", r.team_a, "{.status.phase}", "Running", timeout=60)
        assert "status" not in kubectl_json(control_plane, "get", "execution/run1", "-n", r.team_b)
    finally:
        operator.stop()
    log = operator.log_path.read_text()
    assert "Forbidden" not in log and "Not enough permissions" not in log, log[-4000:]

    # Its token may write Cerebelum objects in team-a only.
    assert patch_execution(control_plane, r.token, r.team_a, "run1") == 200
    assert patch_execution(control_plane, r.token, r.team_b, "run1") == 403, "patched another namespace's Execution"
    everywhere = control_plane.kubectl("get", "executions", "--all-namespaces", token=r.token, check=False)
    assert everywhere.returncode != 0 and "forbidden" in everywhere.stderr.lower()

    def can(verb: str, resource: str, *scope: str) -> bool:
        answer = control_plane.kubectl("auth", "can-i", verb, resource, *scope, token=r.token, check=False)
        return answer.stdout.strip() == "yes"

    assert can("patch", "executions.cerebelum.io/status", "-n", r.team_a)
    assert not can("patch", "executions.cerebelum.io/status", "-n", r.team_b)
    assert can("create", "events", "-n", r.team_a)
    assert not can("create", "events", "-n", r.team_b)
    # What stays cluster-wide: TokenReviews, and reading the approver admission policy.
    assert can("create", "tokenreviews.authentication.k8s.io")
    assert can("list", "mutatingadmissionpolicies.admissionregistration.k8s.io")
    assert can("watch", "mutatingadmissionpolicybindings.admissionregistration.k8s.io")
    assert not can("delete", "mutatingadmissionpolicies.admissionregistration.k8s.io")


@pytest.fixture
def tls_release(control_plane: ControlPlane) -> Iterator[tuple[str, str]]:
    """A release name and namespace for `helm install`; uninstalled afterwards."""
    suffix = uuid.uuid4().hex[:6]
    release, namespace = f"tls-{suffix}", f"tls-{suffix}"
    yield release, namespace
    helm("uninstall", release, "-n", namespace, f"--kubeconfig={control_plane.kubeconfig}", check=False)


def test_the_certificate_helm_generates_is_kept_across_upgrades_until_the_service_s_names_change(
    control_plane: ControlPlane, crds: list[str], tls_release: tuple[str, str]
) -> None:
    release, namespace = tls_release
    kubeconfig = f"--kubeconfig={control_plane.kubeconfig}"
    # The shared API server already has the CRDs (and no admission policy of this release).
    values = ("--set", "crds.install=false", "--set", "approvalPolicy.enabled=false", "--set", "tls.enabled=true")
    helm("install", release, str(CHART), "-n", namespace, "--create-namespace", kubeconfig, *values)
    secret_name = f"{release}-cerebelum-tls"

    def certificate() -> dict[str, str]:
        data: dict[str, str] = kubectl_json(control_plane, "get", "secret", secret_name, "-n", namespace)["data"]
        return data

    first = certificate()
    assert set(first) == {"tls.crt", "tls.key", "ca.crt"}

    helm("upgrade", release, str(CHART), "-n", namespace, kubeconfig, "--reuse-values")
    assert certificate() == first, "an upgrade replaced the CA the workers trust"

    helm(
        "upgrade",
        release,
        str(CHART),
        "-n",
        namespace,
        kubeconfig,
        "--reuse-values",
        "--set",
        "tls.extraDnsNames={a.b}",
    )
    renamed = certificate()
    assert renamed["tls.crt"] != first["tls.crt"], "a certificate without the new name was kept"
