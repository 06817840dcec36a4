"""The web UI served by `cerebelum operator --ui-address`, on a real API server with `--auth kubernetes`.

Callers present ServiceAccount tokens minted by the API server (audience "cerebelum"), as a
header or through the sign-in cookie; the operator checks them by TokenReview and its access
policy's `clients` rules decide who reads and who acts. One operator serves the whole module: an
Execution object to approve through the UI and one left waiting for the read-only account.
What a browser renders is tested in tests/browser; the UI's rules over plain HTTP against
`cerebelum dev` in tests/integration/test_web_ui.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cerebelum import Client
from tests.integration.conftest import WORKER_SCRIPT, read_ledger
from tests.support.control_plane import ControlPlane
from tests.support.kube import apply_yaml, kubectl_json, service_account_kubeconfig, wait_for_jsonpath
from tests.support.processes import OperatorProcess, WorkerProcess, free_port
from tests.support.waiting import wait_until
from tests.support.web import CSRF, ui_request

pytestmark = [pytest.mark.kube, pytest.mark.slow]

GATED = {
    "taskQueue": "test",
    "timeline": ["s1", "go_live"],
    "steps": {"go_live": {"approval": {"timeout": "1h"}}},
}
GRAPH_NODE = re.compile(r'<g class="node[^"]*" data-step="(?P<step>[^"]*)" data-phase="(?P<phase>[^"]*)">')
APPROVE_FORM = re.compile(r'action="/executions/[^"]+/approve"')


@dataclass
class OperatorUi:
    control_plane: ControlPlane
    operator: OperatorProcess
    namespace: str
    tokens: dict[str, str]  # ServiceAccount name -> its token for the audience "cerebelum"
    ids: dict[str, str]  # Execution name -> its id in the engine (the object's uid)
    ledger: Path  # what the worker ran

    @property
    def port(self) -> int:
        assert self.operator.ui_port is not None
        return self.operator.ui_port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def username(self, account: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{account}"

    def request(
        self,
        method: str,
        path: str,
        *,
        bearer: str | None = None,
        cookie: str | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        return ui_request(self.port, method, path, bearer=bearer, cookie=cookie, form=form, headers=headers)

    def graph_phases(self, execution: str, *, bearer: str) -> dict[str, str]:
        """The execution page's graph: each step's data-phase (empty without the graph)."""
        status, _, page = self.request("GET", f"/executions/{self.ids[execution]}", bearer=bearer)
        assert status == 200, page[-2000:]
        _, found, drawing = page.partition('data-testid="graph"')
        if not found:
            return {}
        drawing = drawing.split("</svg>", 1)[0]
        return {m["step"]: m["phase"] for m in GRAPH_NODE.finditer(drawing)}

    def wait_for_approval_step(self, execution: str, *, bearer: str) -> None:
        seen: list[dict[str, str]] = [{}]

        def waiting() -> bool:
            seen[0] = self.graph_phases(execution, bearer=bearer)
            return seen[0].get("go_live") == "WaitingForApproval"

        try:
            wait_until(waiting, within=60, what=f"the graph of {execution} to draw go_live WaitingForApproval")
        except AssertionError as error:
            raise AssertionError(f"{error}; the graph drew {seen[0]}") from None


def mint(control_plane: ControlPlane, namespace: str, account: str) -> str:
    control_plane.kubectl("create", "serviceaccount", account, "-n", namespace)
    return control_plane.kubectl(
        "create", "token", account, "-n", namespace, "--audience=cerebelum", "--duration=1h"
    ).stdout.strip()


@pytest.fixture(scope="module")
def ui(
    control_plane: ControlPlane, crds: list[str], operator_rbac: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorUi]:
    """One operator with `--auth kubernetes`, a UI and an access policy; a worker; two gated Executions."""
    directory = tmp_path_factory.mktemp("ui-operator")
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", namespace)
    tokens = {account: mint(control_plane, namespace, account) for account in ("releaser", "auditor", "stranger")}
    tokens["worker"] = mint(control_plane, namespace, "worker")
    policy = directory / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "workers": [{"subjects": ["system:serviceaccount:*"], "namespaces": ["$self"], "queues": ["*"]}],
                "clients": [
                    {"subjects": [f"system:serviceaccount:{namespace}:releaser"]},
                    {"subjects": [f"system:serviceaccount:{namespace}:auditor"], "readOnly": True},
                ],
            }
        )
    )
    port = free_port()
    operator = OperatorProcess(
        database_url=f"sqlite:///{directory / 'operator.db'}",
        log_path=directory / "operator.log",
        kubeconfig=service_account_kubeconfig(control_plane, directory / "operator.kubeconfig"),
        ui_port=port,  # wait_ready waits for GET /healthz on it too
        extra_args=(
            *("--namespace", namespace, "--lease-name", f"operator-{namespace}", "--status-interval", "0.5"),
            *("--auth", "kubernetes", "--access-policy", str(policy), "--ui-address", f"127.0.0.1:{port}"),
        ),
    )
    ledger = directory / "ledger.jsonl"
    ledger.touch()
    worker = WorkerProcess(
        script=WORKER_SCRIPT,
        address=operator.address,
        ledger=ledger,
        log_path=directory / "worker.log",
        extra_env={"CEREBELUM_TOKEN": tokens["worker"]},
    )
    try:
        operator.start()  # inside: a start that times out still stops the process
        worker.start()
        documents = [
            {"apiVersion": "cerebelum.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "gated"}, "spec": GATED},
            *(
                {
                    "apiVersion": "cerebelum.io/v1alpha1",
                    "kind": "Execution",
                    "metadata": {"name": name},
                    "spec": {"workflow": "gated", "input": {}},
                }
                for name in ("release-1", "release-2")
            ),
        ]
        applied = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
        assert applied.returncode == 0, applied.stderr
        ids = {
            name: str(kubectl_json(control_plane, "get", f"execution/{name}", "-n", namespace)["metadata"]["uid"])
            for name in ("release-1", "release-2")
        }
        yield OperatorUi(control_plane, operator, namespace, tokens, ids, ledger)
    finally:
        worker.stop()
        operator.stop()
        print(f"--- operator log ---\n{operator.log_path.read_text()[-6000:]}")
        print(f"--- worker log ---\n{worker.log_path.read_text()[-2000:]}")


def test_without_a_token_the_ui_sends_to_sign_in_and_the_acting_account_sees_the_execution_and_its_graph(
    ui: OperatorUi,
) -> None:
    status, headers, _ = ui.request("GET", "/executions")
    assert status == 303 and headers["location"] == "/login?next=/executions"
    status, _, page = ui.request("GET", "/executions", bearer="not-a-token-of-anyone")
    assert status == 303, "a token the API server does not know is no caller: sign in"

    releaser = ui.tokens["releaser"]
    status, _, page = ui.request("GET", "/executions", bearer=releaser)
    assert status == 200, page[-2000:]
    assert f'data-id="{ui.ids["release-1"]}"' in page and f'data-id="{ui.ids["release-2"]}"' in page
    assert ui.username("releaser") in page, "the page names who is signed in"
    assert ">release-1</a>" in page, "an Execution is shown by its object's name, its uid beneath"
    ui.wait_for_approval_step("release-1", bearer=releaser)
    assert ui.graph_phases("release-1", bearer=releaser) == {"s1": "Succeeded", "go_live": "WaitingForApproval"}
    # The workers' rule let the worker take its own namespace's task.
    assert (ui.ids["release-1"], "s1") in {(r["execution"], r["step"]) for r in read_ledger(ui.ledger)}


def test_signing_in_and_approving_through_the_ui_records_the_service_account_as_the_approver(ui: OperatorUi) -> None:
    releaser = ui.tokens["releaser"]
    execution_id = ui.ids["release-1"]
    status, headers, page = ui.request(
        "POST", "/login", form={"token": releaser, "next": f"/executions/{execution_id}"}
    )
    assert status == 303, page[-2000:]
    assert headers["location"] == f"/executions/{execution_id}"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    signed_in = re.search(r"cerebelum_token=([^;]+)", cookie)
    assert signed_in and signed_in.group(1) == releaser

    ui.wait_for_approval_step("release-1", bearer=releaser)
    status, _, page = ui.request("GET", f"/executions/{execution_id}", cookie=releaser)
    assert status == 200 and APPROVE_FORM.search(page), page[-3000:]
    assert 'name="approver"' not in page, "the approver is the signed-in account: the form asks no name"
    csrf = CSRF.search(page)
    assert csrf, "the page has no form token"
    status, headers, page = ui.request(
        "POST",
        f"/executions/{execution_id}/approve",
        cookie=releaser,
        form={"csrf": csrf.group(1), "step": "go_live", "payload": '{"ticket": "CHG-9"}', "approver": "the-ceo"},
        headers={"Origin": ui.origin},
    )
    assert status == 303, page[-2000:]
    assert headers["location"] == f"/executions/{execution_id}#steps"

    wait_for_jsonpath(ui.control_plane, "execution/release-1", ui.namespace, "{.status.phase}", "Succeeded", timeout=60)
    with Client(address=ui.operator.address, token=releaser) as client:
        granted = [e for e in client.history(execution_id) if e.type == "ApprovalGranted"]
    assert [(e.data["approver"], e.data["payload"]) for e in granted] == [
        (ui.username("releaser"), {"ticket": "CHG-9"})
    ]
    assert ui.graph_phases("release-1", bearer=releaser) == {"s1": "Succeeded", "go_live": "Succeeded"}


def test_the_read_only_account_sees_no_approve_form_and_its_approval_is_refused(ui: OperatorUi) -> None:
    auditor = ui.tokens["auditor"]
    execution_id = ui.ids["release-2"]
    ui.wait_for_approval_step("release-2", bearer=auditor)
    status, _, page = ui.request("GET", f"/executions/{execution_id}", bearer=auditor)
    assert status == 200 and "read only" in page
    assert not APPROVE_FORM.search(page) and "/cancel" not in page
    assert "You may read this execution but not approve" in page

    # Signed in by the cookie, the page's sign-out form carries the auditor's form token.
    status, _, page = ui.request("GET", f"/executions/{execution_id}", cookie=auditor)
    csrf = CSRF.search(page)
    assert status == 200 and csrf, page[-2000:]
    status, _, page = ui.request(
        "POST",
        f"/executions/{execution_id}/approve",
        cookie=auditor,
        form={"csrf": csrf.group(1), "step": "go_live", "payload": ""},
        headers={"Origin": ui.origin},
    )
    assert status == 403, page[-2000:]
    assert "readOnly" in page and ui.username("auditor") in page

    def phase() -> str:
        return ui.control_plane.kubectl(
            "get", "execution/release-2", "-n", ui.namespace, "-o", "jsonpath={.status.phase}"
        ).stdout

    # The object's status follows the engine within one status interval; the refused approval
    # must not have moved it past the wait.
    wait_until(lambda: phase() != "", within=30, what="release-2's first status write")
    assert phase() == "WaitingForApproval"


def test_an_account_the_policy_does_not_name_may_neither_sign_in_nor_read(ui: OperatorUi) -> None:
    stranger = ui.tokens["stranger"]
    status, _, page = ui.request("POST", "/login", form={"token": stranger, "next": "/executions"})
    assert status == 401 and "may not use the UI" in page and ui.username("stranger") in page
    status, _, page = ui.request("GET", "/executions", bearer=stranger)
    assert status == 403 and ui.username("stranger") in page
    assert ui.ids["release-2"] not in page
    status, _, _ = ui.request(
        "POST", f"/executions/{ui.ids['release-2']}/approve", bearer=stranger, form={"step": "go_live"}
    )
    assert status == 403
    # A worker's token signs in nowhere either: the workers' rules grant tasks, not the UI.
    status, _, page = ui.request("POST", "/login", form={"token": ui.tokens["worker"], "next": "/executions"})
    assert status == 401 and "may not use the UI" in page
