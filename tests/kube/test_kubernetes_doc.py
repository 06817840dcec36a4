"""The `helm template` commands of docs/kubernetes.md run exactly as written.

Each is taken from the doc's `sh` blocks (backslash continuations joined) and run from the
repository's root with the cached helm first on PATH: the helm part alone, with no cluster, and the
whole pipeline into `kubectl apply` against the test API server.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.control_plane import ControlPlane
from tests.support.helm import KUBE_VERSION, helm_binary

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "kubernetes.md"
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


def shell_commands(markdown: str) -> list[str]:
    """Every command of the ```sh blocks, one string each, continuation lines joined as the shell does."""
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL):
        text = block.replace("\\\n", "")  # as the shell reads a backslash-newline: not at all
        commands += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return commands


def helm_template_commands() -> list[str]:
    found = [command for command in shell_commands(DOC.read_text()) if command.startswith("helm template ")]
    assert found, f"{DOC} shows no helm template command"
    return found


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


def test_the_doc_s_sh_blocks_are_read_with_their_continuation_lines_joined() -> None:
    markdown = "text\n```sh\nhelm template a b \\\n  --x y | kubectl apply -f -\n# a comment\nls\n```\n"
    assert shell_commands(markdown) == ["helm template a b   --x y | kubectl apply -f -", "ls"]


@pytest.mark.parametrize("command", helm_template_commands())
def test_each_helm_template_command_of_the_doc_renders_as_written(command: str) -> None:
    helm_part = command.split(" | ", 1)[0]
    result = run_as_written(helm_part)

    assert result.returncode == 0, f"{helm_part}\n{result.stderr}"
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert kinds == EXPECTED_KINDS, kinds
    # As the doc says, the version given changes nothing: the chart's minimum and the tests' render the same.
    words = shlex.split(helm_part)
    given = words[words.index("--kube-version") + 1]
    for version in ("1.30.0", KUBE_VERSION):
        other = run_as_written(helm_part.replace(f"--kube-version {given}", f"--kube-version {version}"))
        assert other.returncode == 0 and other.stdout == result.stdout, (version, other.stderr)


@pytest.mark.kube
@pytest.mark.parametrize("command", [c for c in helm_template_commands() if " | kubectl apply -f -" in c])
def test_each_helm_template_pipeline_of_the_doc_installs_into_a_cluster_as_written(
    command: str, control_plane: ControlPlane
) -> None:
    control_plane.kubectl("create", "namespace", "cerebelum-system", check=False)
    result = run_as_written(command, KUBECONFIG=str(control_plane.kubeconfig))

    assert result.returncode == 0, f"{command}\n{result.stderr}"
    applied = result.stdout
    assert "customresourcedefinition.apiextensions.k8s.io/executions.cerebelum.io" in applied, applied
    assert "serviceaccount/cerebelum" in applied and "clusterrole.rbac.authorization.k8s.io/cerebelum" in applied
