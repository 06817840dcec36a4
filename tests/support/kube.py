"""Helpers for operator tests on the real API server: RBAC-bound credentials and the audit log.

The operator under test never runs as admin: it gets a token of the Helm chart's own
ServiceAccount, bound only to the chart's RBAC, so a missing permission fails the tests. API writes are counted from the API
server's own audit log, not from the operator's word.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.control_plane import ControlPlane
from tests.support.helm import render

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "cerebelum-system"
OPERATOR_ACCOUNT = "cerebelum"  # the chart's ServiceAccount for the release "cerebelum"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""


def audit_args(directory: Path) -> list[str]:
    """kube-apiserver flags that log every write (metadata only) as JSON lines."""
    directory.mkdir(parents=True, exist_ok=True)
    policy = directory / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={directory / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        "--audit-log-maxsize=0",
    ]


def audited_writes(audit_log: Path, *, user: str = OPERATOR_USER, namespace: str | None = None) -> Counter[str]:
    """Writes `user` made, as counts per 'verb resource[/subresource]'."""
    counts: Counter[str] = Counter()
    if not audit_log.exists():
        return counts
    for line in audit_log.read_text().splitlines():
        entry: dict[str, Any] = json.loads(line)
        if entry.get("stage") != "ResponseComplete" or entry.get("user", {}).get("username") != user:
            continue
        if entry.get("verb") not in WRITE_VERBS:
            continue
        ref = entry.get("objectRef") or {}
        if namespace is not None and ref.get("namespace") != namespace:
            continue
        resource = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        counts[f"{entry['verb']} {resource}"] += 1
    return counts


def audited_writes_per_object(
    audit_log: Path, write: str, *, namespace: str, user: str = OPERATOR_USER
) -> Counter[str]:
    """How many times `user` made the write `write` ('verb resource[/subresource]') to each object, by name."""
    counts: Counter[str] = Counter()
    if not audit_log.exists():
        return counts
    verb, _, resource = write.partition(" ")
    for line in audit_log.read_text().splitlines():
        entry: dict[str, Any] = json.loads(line)
        if entry.get("stage") != "ResponseComplete" or entry.get("user", {}).get("username") != user:
            continue
        ref = entry.get("objectRef") or {}
        written = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        if entry.get("verb") == verb and written == resource and ref.get("namespace") == namespace:
            counts[ref.get("name", "?")] += 1
    return counts


def install_operator_rbac(control_plane: ControlPlane) -> None:
    """The chart's ServiceAccount, RBAC and approver policy, rendered by helm and applied."""
    control_plane.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    manifests = render(
        "--show-only=templates/serviceaccount.yaml",
        "--show-only=templates/rbac.yaml",
        "--show-only=templates/approval-policy.yaml",
        namespace=OPERATOR_NAMESPACE,
    )
    control_plane.kubectl("apply", "-n", OPERATOR_NAMESPACE, "-f", "-", input=manifests)


def service_account_kubeconfig(
    control_plane: ControlPlane, path: Path, *, namespace: str = OPERATOR_NAMESPACE, account: str = OPERATOR_ACCOUNT
) -> Path:
    """A kubeconfig whose only credential is a fresh token of the ServiceAccount."""
    token = control_plane.kubectl("create", "token", account, "-n", namespace, "--duration=4h").stdout.strip()
    return token_kubeconfig(control_plane, path, token=token, user=account)


def token_kubeconfig(control_plane: ControlPlane, path: Path, *, token: str, user: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": control_plane.server, "certificate-authority": str(control_plane.ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user, "namespace": "default"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config))
    return path


def kubectl_json(control_plane: ControlPlane, *args: str) -> Any:
    return json.loads(control_plane.kubectl(*args, "-o", "json").stdout)


def wait_for_jsonpath(
    control_plane: ControlPlane, resource: str, namespace: str, jsonpath: str, expected: str, *, timeout: float
) -> str:
    """Poll `kubectl get -o jsonpath` until it prints `expected`; fail with what it printed last."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        result = control_plane.kubectl("get", resource, "-n", namespace, "-o", f"jsonpath={jsonpath}", check=False)
        last = result.stdout.strip() if result.returncode == 0 else result.stderr.strip()
        if last == expected:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{resource} {jsonpath} is {last!r}, not {expected!r}, after {timeout}s")


def shard_holders(control_plane: ControlPlane, group: str) -> Counter[str]:
    """How many of shard group `group`'s Leases (in OPERATOR_NAMESPACE) each replica holds ('' for none)."""
    return Counter(shard_owners(control_plane, group).values())


def shard_owners(control_plane: ControlPlane, group: str) -> dict[str, str]:
    """Each shard Lease of the group (by name, <group>-shard-<n>) and its holder ('' for none)."""
    leases = kubectl_json(
        control_plane,
        "get",
        "leases",
        "-n",
        OPERATOR_NAMESPACE,
        "-l",
        f"cerebelum.io/shard-group={group},cerebelum.io/lease-kind=shard",
    )["items"]
    return {str(lease["metadata"]["name"]): str(lease["spec"].get("holderIdentity") or "") for lease in leases}


def apply_yaml(control_plane: ControlPlane, text: str, *, namespace: str) -> subprocess.CompletedProcess[str]:
    return control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=text, check=False)


def describe_event_reasons(
    control_plane: ControlPlane, namespace: str, name: str, kind: str = "execution"
) -> list[str]:
    """The Reason column of the Events table `kubectl describe` prints, top to bottom."""
    text = control_plane.kubectl("describe", kind, name, "-n", namespace).stdout
    if "\nEvents:" not in text or "Events:\t<none>" in text or "Events:  <none>" in text:
        return []
    lines = text[text.index("\nEvents:") + 1 :].splitlines()[1:]
    header = lines[0].split()
    assert header[:2] == ["Type", "Reason"], lines[:2]
    return [line.split()[1] for line in lines[2:] if line.strip()]
