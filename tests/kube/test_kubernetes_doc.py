"""The `helm template` commands of docs/kubernetes.md run exactly as written.

The blocks marked `<!-- run: tests/kube/test_kubernetes_doc.py -->` (tests/docs/blocks.py) are run
from the repository's root with the cached helm first on PATH, each command as the doc spells it:
the helm part alone, with no cluster, and the whole pipeline into `kubectl apply` against the test
API server.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.docs.blocks import marked_for
from tests.docs.shell import commands
from tests.support.control_plane import ControlPlane
from tests.support.helm import KUBE_VERSION, helm_binary

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = marked_for(__file__)
DOC_BLOCKS = [block.text for block in BLOCKS]  # tests/docs/test_coverage.py: each is run below
HELM_TEMPLATE = [command for block in BLOCKS for command in commands(block.text) if command.startswith("helm template")]
PIPELINES = [command for command in HELM_TEMPLATE if command.endswith(" | kubectl apply -f -")]
DOC_KUBE_VERSION = "--kube-version 1.37.2"
EXPECTED_KINDS = {
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
}


def run_as_written(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{helm_binary().parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=ROOT,
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_command_of_the_blocks_marked_for_this_module_is_a_helm_template_run_here() -> None:
    assert DOC_BLOCKS, "docs/kubernetes.md marks no block for this module"
    assert [c for b in BLOCKS for c in commands(b.text)] == HELM_TEMPLATE == PIPELINES


@pytest.mark.parametrize("command", HELM_TEMPLATE)
def test_each_helm_template_command_of_the_doc_renders_as_written(command: str) -> None:
    helm_part = command.split(" | ", 1)[0]
    result = run_as_written(helm_part)

    assert result.returncode == 0, f"{helm_part}\n{result.stderr}"
    assert {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc} == EXPECTED_KINDS
    # As the doc says, the version given changes nothing: the oldest Kubernetes the chart's default
    # values support (1.36, for the approval policy's MutatingAdmissionPolicy v1) and the tests' render the same.
    assert DOC_KUBE_VERSION in helm_part
    for version in ("1.36.0", KUBE_VERSION):
        other = run_as_written(helm_part.replace(DOC_KUBE_VERSION, f"--kube-version {version}"))
        assert other.returncode == 0 and other.stdout == result.stdout, (version, other.stderr)


@pytest.mark.kube
@pytest.mark.parametrize("command", PIPELINES)
def test_each_helm_template_pipeline_of_the_doc_installs_into_a_cluster_as_written(
    command: str, control_plane: ControlPlane
) -> None:
    control_plane.kubectl("create", "namespace", "cerebelum-system", check=False)
    result = run_as_written(command, KUBECONFIG=str(control_plane.kubeconfig))

    assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert "customresourcedefinition.apiextensions.k8s.io/executions.cerebelum.io" in result.stdout, result.stdout
    assert "serviceaccount/cerebelum" in result.stdout
    assert "clusterrole.rbac.authorization.k8s.io/cerebelum" in result.stdout
