"""Whether the operator believes `spec.approver` (and a Signal's `spec.sender`): only when a bound
admission policy stamps every Approval (every Signal).

The policy documents are the chart's own template (rendered by helm), then changed one field at a
time; the reader is a fake that serves them, and fails as a forbidden or broken API server would.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from lightkube.core.exceptions import ApiError
from lightkube.resources.admissionregistration_v1 import MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding

from cerebelum_operator.kube.approvers import (
    APPROVER,
    SENDER,
    AdmissionPolicyCheck,
    Unreachable,
    approver_policy_problem,
    stamp_policy_problem,
)
from cerebelum_operator.runtime import FakeClock
from tests.support.helm import render

NOW_MS = 1_700_000_000_000


def chart_documents(suffix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chart's MutatingAdmissionPolicy named `...-<suffix>` and its binding."""
    documents = list(yaml.safe_load_all(render("--show-only=templates/approval-policy.yaml", namespace="ops")))
    (policy,) = [
        d for d in documents if d["kind"] == "MutatingAdmissionPolicy" and d["metadata"]["name"].endswith(suffix)
    ]
    (binding,) = [
        d for d in documents if d["kind"] == "MutatingAdmissionPolicyBinding" and d["metadata"]["name"].endswith(suffix)
    ]
    return policy, binding


@pytest.fixture(scope="module")
def chart_policy() -> tuple[dict[str, Any], dict[str, Any]]:
    """The chart's approver MutatingAdmissionPolicy and its binding, as the API server would list them."""
    return chart_documents("-approval-approver")


@pytest.fixture(scope="module")
def sender_policy() -> tuple[dict[str, Any], dict[str, Any]]:
    """The chart's sender MutatingAdmissionPolicy and its binding."""
    return chart_documents("-signal-sender")


def test_the_chart_s_sender_policy_makes_the_sender_verifiable_and_the_approver_policy_does_not(
    chart_policy: tuple[dict[str, Any], dict[str, Any]], sender_policy: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    assert stamp_policy_problem([sender_policy[0]], [sender_policy[1]], SENDER) is None
    assert stamp_policy_problem([sender_policy[0]], [sender_policy[1]], APPROVER) is not None
    problem = stamp_policy_problem([chart_policy[0]], [chart_policy[1]], SENDER)
    assert problem == "no MutatingAdmissionPolicy writes request.userInfo.username into spec.sender of every new Signal"


async def test_one_read_of_the_policies_answers_for_approvers_and_senders_and_names_the_missing_one(
    chart_policy: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    reader = FakeReader([chart_policy[0]], [chart_policy[1]])
    check = AdmissionPolicyCheck(reader, clock=FakeClock(start_ms=NOW_MS))

    assert await check.problem(APPROVER) is None
    problem = await check.problem(SENDER)

    assert check.reads == 1
    assert problem is not None and problem.startswith("the sender cannot be verified: ")
    assert "spec.sender of every new Signal" in problem and "--trust-claimed-approver" in problem


def variant(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with the field at the dotted `path` set to `value` (None: removed)."""
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = changed  # dicts and, at digit parts, lists
    for part in parents:
        node = node.setdefault(part, {}) if not part.isdigit() else node[int(part)]
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return changed


def test_the_chart_s_policy_and_binding_make_the_approver_verifiable(
    chart_policy: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    policy, binding = chart_policy
    assert approver_policy_problem([policy], [binding]) is None


def test_without_any_policy_the_approver_cannot_be_verified() -> None:
    assert "no MutatingAdmissionPolicy writes request.userInfo.username into spec.approver" in str(
        approver_policy_problem([], [])
    )


def test_the_chart_s_policy_without_its_binding_does_not_count(
    chart_policy: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    policy, binding = chart_policy
    problem = approver_policy_problem([policy], [variant(binding, "spec.policyName", "someone-else")])
    assert problem is not None and "is not bound" in problem and policy["metadata"]["name"] in problem


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("spec.failurePolicy", "Ignore", id="failure-ignored"),
        pytest.param("spec.matchConditions", [{"name": "some", "expression": "true"}], id="match-conditions"),
        pytest.param("spec.matchConstraints.namespaceSelector", {"matchLabels": {"a": "b"}}, id="namespace-selector"),
        pytest.param("spec.matchConstraints.objectSelector", {"matchLabels": {"a": "b"}}, id="object-selector"),
        pytest.param("spec.matchConstraints.resourceRules.0.resources", ["executions"], id="other-resource"),
        pytest.param("spec.matchConstraints.resourceRules.0.operations", ["UPDATE"], id="not-on-create"),
        pytest.param("spec.matchConstraints.resourceRules.0.resourceNames", ["one"], id="some-names-only"),
        pytest.param(
            "spec.matchConstraints.excludeResourceRules",
            [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["approvals"]}],
            id="approvals-excluded",
        ),
        pytest.param(
            "spec.mutations",
            [{"patchType": "JSONPatch", "jsonPatch": {"expression": '[JSONPatch{op: "remove", path: "/spec/x"}]'}}],
            id="stamps-something-else",
        ),
    ],
)
def test_a_policy_that_may_leave_an_approval_unstamped_does_not_count(
    chart_policy: tuple[dict[str, Any], dict[str, Any]], path: str, value: Any
) -> None:
    policy, binding = chart_policy
    assert approver_policy_problem([variant(policy, path, value)], [binding]) is not None


def test_a_binding_limited_to_some_namespaces_does_not_count(
    chart_policy: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    policy, binding = chart_policy
    narrow = variant(binding, "spec.matchResources", {"namespaceSelector": {"matchLabels": {"team": "a"}}})
    assert approver_policy_problem([policy], [narrow]) is not None
    defaulted = variant(binding, "spec.matchResources", {"namespaceSelector": {}, "objectSelector": {}})
    assert approver_policy_problem([policy], [defaulted]) is None


def test_wildcard_rules_count(chart_policy: tuple[dict[str, Any], dict[str, Any]]) -> None:
    policy, binding = chart_policy
    rule = {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"], "scope": "*"}
    assert approver_policy_problem([variant(policy, "spec.matchConstraints.resourceRules", [rule])], [binding]) is None


# -- the check against an API server -----------------------------------------------------------


@dataclass
class FakeReader:
    policies: list[dict[str, Any]] = field(default_factory=list)
    bindings: list[dict[str, Any]] = field(default_factory=list)
    error: ApiError | None = None

    async def list_all(self, resource: type[Any]) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        if resource is MutatingAdmissionPolicy:
            return self.policies
        assert resource is MutatingAdmissionPolicyBinding
        return self.bindings


def api_error(code: int, reason: str, message: str) -> ApiError:
    class Response:
        status_code = code

        def json(self) -> dict[str, Any]:
            return {"kind": "Status", "code": code, "reason": reason, "message": message}

    return ApiError(response=Response())  # type: ignore[arg-type]


async def test_the_check_reads_the_cluster_at_most_once_per_period_and_sees_a_binding_removed(
    chart_policy: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    policy, binding = chart_policy
    reader, clock = FakeReader([policy], [binding]), FakeClock(start_ms=NOW_MS)
    check = AdmissionPolicyCheck(reader, clock=clock, ttl_ms=5_000)

    assert await check.problem() is None
    reader.bindings = []
    await clock.advance(4.999)
    assert await check.problem() is None and check.reads == 1
    await clock.advance(0.001)
    problem = await check.problem()

    assert check.reads == 2
    assert problem is not None and problem.startswith("the approver cannot be verified: ")
    assert "approvalPolicy.enabled=true" in problem and "--trust-claimed-approver" in problem


async def test_an_operator_forbidden_to_read_the_policies_refuses_naming_the_permission_it_needs() -> None:
    forbidden = api_error(403, "Forbidden", 'mutatingadmissionpolicies is forbidden: User "op" cannot list')
    check = AdmissionPolicyCheck(FakeReader(error=forbidden), clock=FakeClock(start_ms=NOW_MS))

    problem = await check.problem()

    assert problem is not None and "could not read the admission policies (Forbidden" in problem
    assert "get, list and watch on mutatingadmissionpolicies and mutatingadmissionpolicybindings" in problem


async def test_a_failing_api_server_is_unreachable_not_a_verdict() -> None:
    check = AdmissionPolicyCheck(
        FakeReader(error=api_error(503, "ServiceUnavailable", "etcd down")), clock=FakeClock(start_ms=NOW_MS)
    )

    with pytest.raises(Unreachable, match="etcd down"):
        await check.problem()
