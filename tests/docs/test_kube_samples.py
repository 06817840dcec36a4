"""The samples that run against a real API server (tests/support/control_plane.py), as written.

- install.md's refusals: `$ helm install ...` and the error it prints, with the cached helm, against
  an API server (helm asks the cluster for its version before it checks the values).
- The CRD reference's Execution and Approval examples: admitted by the CRDs as written.
- kubernetes.md's "try the operator from your machine": the operator, a worker, kubectl and the
  CLI, one command at a time in one shell (tests/docs/shell.py) on the machine's network, where
  the API server listens. The operator serves 127.0.0.1:7450 as the doc says, so that port must
  be free. `kubectl get executions -w` watches until the reader stops it: here, SIGINT after 10 s.
  `<status.executionId>` is replaced by what `kubectl get` shows there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.control_plane import ControlPlane, ControlPlaneError, ensure_binaries
from tests.support.helm import helm_binary, render

from .blocks import Block, marked_for
from .shell import Shell, checkout_copy, commands, shell

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(300)]

BLOCKS = marked_for(__file__)
DOC_BLOCKS = [block.text for block in BLOCKS]  # tests/docs/test_coverage.py: each is run below


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """An API server of this module's own: the operator below serves every namespace of it."""
    if shutil.which("kubectl") is None:
        unavailable("kubectl is not on PATH")
    try:
        bin_dir = ensure_binaries()
    except ControlPlaneError as e:
        unavailable(f"no control plane binaries: {e}")
    with ControlPlane(bin_dir) as started:
        yield started


@pytest.fixture
def reader_env(control_plane: ControlPlane) -> dict[str, str]:
    """A reader's shell: KUBECONFIG set, and helm (the cached one) on PATH."""
    return {
        "KUBECONFIG": str(control_plane.kubeconfig),
        "PATH": f"{helm_binary().parent}{os.pathsep}{os.environ['PATH']}",
    }


def by_doc(doc: str) -> list[Block]:
    return [b for b in BLOCKS if b.doc == doc]


def block(doc: str, first: str) -> Block:
    (found,) = [b for b in by_doc(doc) if b.text.startswith(first)]
    return found


# (doc, how the block starts) for every block this module runs; the refusals are the console blocks.
INSTALL = [
    ("docs/kubernetes.md", "helm install cerebelum charts/cerebelum -n cerebelum-system --create-namespace\n"),
    ("docs/install.md", "helm upgrade cerebelum"),
    ("docs/install.md", "helm uninstall cerebelum"),
    ("docs/install.md", "helm install cerebelum charts/cerebelum -n cerebelum-system --create-namespace --set tls"),
    ("docs/install.md", "kubectl -n cerebelum-system create secret generic cerebelum-db"),
    ("docs/install.md", "kubectl -n cerebelum-system get secret cerebelum-tls"),
    ("docs/images-and-workers.md", "helm install billing-worker"),
    ("docs/images-and-workers.md", "kubectl -n cerebelum-system create secret generic billing-engine-token"),
]
GUIDE = [
    "cerebelum operator",
    "CEREBELUM_ADDRESS=",
    "kubectl create -f examples/provision/approval.yaml",
    "cerebelum history",
]


def test_every_block_marked_for_this_module_has_a_test_here() -> None:
    handled = [block(doc, first) for doc, first in INSTALL]
    handled += [block("docs/kubernetes.md", first) for first in GUIDE]
    handled += [b for b in BLOCKS if b.language == "console" or b.doc == "docs/crd-reference.md"]
    assert sorted(b.where for b in handled) == sorted(b.where for b in BLOCKS)


@pytest.mark.parametrize("index", [0, 1])
def test_the_install_guide_shows_helm_refusing_bad_values_with_the_error_helm_prints(
    index: int, reader_env: dict[str, str], tmp_path: Path
) -> None:
    sample = [b for b in by_doc("docs/install.md") if b.language == "console"][index]
    command, *expected = sample.text.splitlines()
    assert command.startswith("$ "), sample.where
    with shell(tmp_path, env=reader_env, network=True) as sh:
        ran = sh.run(command[2:])
    assert ran.returncode != 0, ran
    # The doc's lines may break where helm's do not: the words and their order are what it promises.
    assert ran.stderr.split() == " ".join(expected).split(), (
        f"{sample.where}: the doc shows\n{chr(10).join(expected)}\nhelm printed\n{ran.stderr}"
    )


def test_the_crd_reference_examples_are_admitted_as_written(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "-f", str(Path(__file__).resolve().parents[2] / "crds"))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    control_plane.kubectl("create", "namespace", "crd-examples")
    for example in by_doc("docs/crd-reference.md"):
        created = control_plane.kubectl("create", "-n", "crd-examples", "-f", "-", input=example.text)
        assert "created" in created.stdout, (example.where, created.stdout, created.stderr)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_the_kubernetes_guide_runs_the_operator_from_a_machine_to_an_approved_execution(
    control_plane: ControlPlane, reader_env: dict[str, str], tmp_path: Path
) -> None:
    if not port_is_free(7450):
        unavailable("127.0.0.1:7450, where the guide's operator serves, is in use")
    # What the guide's `helm template ... | kubectl apply -f -` installs just before (that command
    # is checked elsewhere): the CRDs, ServiceAccount, RBAC and the approver admission policy.
    control_plane.kubectl("create", "namespace", "cerebelum-system")
    manifests = render(*(arg for t in ("crds", "serviceaccount", "rbac", "approval-policy")
                         for arg in ("--show-only", f"templates/{t}.yaml")))  # fmt: skip
    control_plane.kubectl("apply", "-f", "-", input=manifests)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

    operator, start, approve, history = (commands(block("docs/kubernetes.md", first).text) for first in GUIDE)
    with shell(tmp_path, env=reader_env, network=True) as sh:
        sh.must("source scripts/setup.sh")  # the reader's `cerebelum` and `python`, as in the README
        try:
            run_guide(sh, operator, start, approve, history, log=tmp_path / "operator.log")
        except AssertionError as failure:
            operator_log = (tmp_path / "operator.log").read_text()[-4000:]
            raise AssertionError(f"{failure}\n--- the operator:\n{operator_log}\n{sh.background_logs()}") from None


def run_guide(
    sh: Shell, operator: list[str], start: list[str], approve: list[str], history: list[str], *, log: Path
) -> None:
    (run_operator, _production_comment) = operator
    # Its store is .cerebelum/operator.db, in the shell's own tmpfs (tests/docs/shell.py).
    sh.must(f"{run_operator} >{log} 2>&1 &")
    sh.wait_for("the operator's engine", "cerebelum get workflows", lambda r: r.returncode == 0, timeout=120)
    for command in start:
        if command.endswith(" -w"):
            watched = sh.run(f"timeout -s INT 10 {command}")
            assert "provision-eu-1" in watched.stdout, watched
            continue
        sh.must(command)
    sh.wait_for(
        "the approval",
        "kubectl get execution provision-eu-1 -o jsonpath={.status.phase}",
        lambda r: r.stdout == "WaitingForApproval",
        timeout=120,
    )
    for command in approve:
        sh.must(command)
    sh.wait_for(
        "Succeeded",
        "kubectl get execution provision-eu-1 -o jsonpath={.status.phase}",
        lambda r: r.stdout == "Succeeded",
        timeout=120,
    )
    described = sh.must("kubectl describe execution provision-eu-1")
    for reason in ("WaitingForApproval", "Approved"):  # a start and a success post no Event
        assert reason in described.stdout, described
    execution_id = sh.must("kubectl get execution provision-eu-1 -o jsonpath={.status.executionId}").stdout
    (command,) = history
    shown = sh.must(command.replace("<status.executionId>", execution_id))
    assert "ExecutionSucceeded" in shown.stdout, shown


@pytest.fixture
def fresh_api_server() -> Iterator[ControlPlane]:
    """An API server of this test's own: the charts' CRDs and cluster-wide objects come and go."""
    try:
        bin_dir = ensure_binaries()
    except ControlPlaneError as e:
        unavailable(f"no control plane binaries: {e}")
    with ControlPlane(bin_dir) as started:
        yield started


def test_the_helm_commands_of_the_guides_install_upgrade_and_uninstall_as_written(
    fresh_api_server: ControlPlane, tmp_path: Path
) -> None:
    """On an API server without nodes: Helm's side of each command (the objects, what is kept);
    tests/node runs the pods."""
    cp = fresh_api_server
    env = {"KUBECONFIG": str(cp.kubeconfig), "PATH": f"{helm_binary().parent}{os.pathsep}{os.environ['PATH']}"}

    def kubectl(*args: str) -> str:
        return str(cp.kubectl(*args).stdout)

    # install.md's pipe writes engine-ca.crt where it runs: a folder linking to the checkout.
    with shell(tmp_path / "shell", env=env, network=True, cwd=checkout_copy(tmp_path / "checkout")) as sh:

        def run(index: int) -> None:
            doc, first = INSTALL[index]
            for command in commands(block(doc, first).text):
                sh.must(command)

        run(0)  # kubernetes.md's install, with the defaults
        assert "cerebelum" in kubectl("-n", "cerebelum-system", "get", "deployment", "-o", "name")
        run(1)  # upgrade --reuse-values
        assert "cerebelum\t" in sh.must("helm list -n cerebelum-system").stdout
        run(2)  # uninstall keeps the CRDs and the SQLite claim
        kubectl("get", "crd", "workflows.cerebelum.io", "executions.cerebelum.io", "approvals.cerebelum.io")
        kubectl("-n", "cerebelum-system", "get", "pvc", "cerebelum-data")
        run(3)  # with TLS: Helm generates the CA and certificate into <fullname>-tls
        assert kubectl("-n", "cerebelum-system", "get", "secret", "cerebelum-tls", "-o", "jsonpath={.data.ca\\.crt}")
        run(5)  # its CA to a worker release in another namespace, from the file the pipe wrote
        ca = (tmp_path / "checkout" / "engine-ca.crt").read_text()
        assert ca.startswith("-----BEGIN CERTIFICATE-----"), ca
        configmaps = json.loads(kubectl("-n", "team-a", "get", "configmap", "-o", "json"))["items"]
        shown = [value for item in configmaps for value in item.get("data", {}).values()]
        assert ca in shown, "the worker chart's CA ConfigMap holds the engine's CA"
        sh.must("helm uninstall cerebelum -n cerebelum-system")  # (the harness's), for the next install
        run(4)  # PostgreSQL from a Secret, two replicas, metrics
        assert (
            kubectl("-n", "cerebelum-system", "get", "deployment", "cerebelum", "-o", "jsonpath={.spec.replicas}")
            == "2"
        )
        assert "cerebelum-metrics" in kubectl("-n", "cerebelum-system", "get", "service", "-o", "name")
        run(6)  # a worker release, then its engine token from a Secret
        run(7)
        env_vars = kubectl(
            "-n", "cerebelum-system", "get", "deployment", "-l", "app.kubernetes.io/instance=billing-worker",
            "-o", "jsonpath={.items[0].spec.template.spec.containers[0].env}",
        )  # fmt: skip
        assert "billing-engine-token" in env_vars and "CEREBELUM_TOKEN" in env_vars, env_vars
