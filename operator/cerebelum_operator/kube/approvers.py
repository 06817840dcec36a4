"""Whether an Approval's `spec.approver` can be believed: is the admission policy that stamps it installed?

kopf handlers never see who created an object, so the operator cannot tell who approved; the
chart's MutatingAdmissionPolicy writes the requesting user into `spec.approver` on create. Without
that policy (or its binding) `spec.approver` is whatever the creator typed, so the operator refuses
Approvals unless it finds a bound policy that covers every Approval (default closed), or it was
started with `--trust-claimed-approver`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from lightkube.core.exceptions import ApiError
from lightkube.resources.admissionregistration_v1 import MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding

from ..runtime import Clock
from .resources import GROUP, VERSION

__all__ = [
    "AdmissionPolicyCheck",
    "ApproverCheck",
    "PolicyReader",
    "TrustClaimedApprover",
    "Unreachable",
    "approver_policy_problem",
]

log = logging.getLogger(__name__)

JSON = Any

REMEDY = (
    "install the approval policy (Helm value approvalPolicy.enabled=true: a MutatingAdmissionPolicy and its "
    "binding that write the requesting user into spec.approver of every new Approval), or start the operator "
    "with --trust-claimed-approver to accept the approver an Approval claims"
)
PERMISSION = (
    "get, list and watch on mutatingadmissionpolicies and mutatingadmissionpolicybindings "
    "(admissionregistration.k8s.io)"
)


class Unreachable(Exception):
    """The API server did not answer the check; try again later."""


class ApproverCheck(Protocol):
    #: Whether a missing `spec.approver` is acceptable (recorded as unknown) rather than refused.
    trusts_claims: bool

    async def problem(self) -> str | None:
        """None when `spec.approver` is trustworthy; otherwise why not and what to install."""
        ...


class TrustClaimedApprover:
    """The opt-out: believe whatever `spec.approver` says (`--trust-claimed-approver`)."""

    trusts_claims = True

    async def problem(self) -> str | None:
        return None


class PolicyReader(Protocol):
    async def list_all(self, resource: type[Any]) -> list[dict[str, JSON]]: ...


class AdmissionPolicyCheck:
    """Reads the cluster's MutatingAdmissionPolicies and bindings, at most once per `ttl_ms`."""

    trusts_claims = False

    def __init__(self, api: PolicyReader, *, clock: Clock, ttl_ms: int = 5_000) -> None:
        self.api = api
        self.clock = clock
        self.ttl_ms = ttl_ms
        self.reads = 0
        self._answer: tuple[int, str | None] | None = None

    async def problem(self) -> str | None:
        now = self.clock.now_ms()
        if self._answer is not None and now < self._answer[0]:
            return self._answer[1]
        self.reads += 1
        try:
            policies = await self.api.list_all(MutatingAdmissionPolicy)
            bindings = await self.api.list_all(MutatingAdmissionPolicyBinding)
        except ApiError as error:
            if error.status.code not in (401, 403, 404):
                raise Unreachable(f"could not read the admission policies: {error.status.message}") from error
            # Forbidden: the chart's RBAC is older than the operator; not found: the API server has no such API.
            found = (
                f"the operator could not read the admission policies ({error.status.reason}: {error.status.message})"
            )
            answer: str | None = f"{found}; it needs {PERMISSION}"
        else:
            answer = approver_policy_problem(policies, bindings)
        if answer is not None:
            answer = f"the approver cannot be verified: {answer}; {REMEDY}"
        self._answer = (now + self.ttl_ms, answer)
        return answer


def approver_policy_problem(
    policies: Sequence[Mapping[str, JSON]], bindings: Sequence[Mapping[str, JSON]]
) -> str | None:
    """None if some bound policy overwrites `spec.approver` of every new Approval; else what is missing."""
    stamping = [policy for policy in policies if _stamps_every_approver(policy)]
    if not stamping:
        return "no MutatingAdmissionPolicy writes request.userInfo.username into spec.approver of every new Approval"
    names = {str((policy.get("metadata") or {}).get("name")) for policy in stamping}
    if any(_binds_everywhere(binding, names) for binding in bindings):
        return None
    listed = ", ".join(sorted(names))
    return f"the MutatingAdmissionPolicy {listed} is not bound to every namespace (no MutatingAdmissionPolicyBinding)"


def _stamps_every_approver(policy: Mapping[str, JSON]) -> bool:
    spec: Mapping[str, JSON] = policy.get("spec") or {}
    if spec.get("failurePolicy", "Fail") != "Fail" or spec.get("matchConditions") or spec.get("paramKind"):
        return False  # it may let an Approval through unstamped
    constraints: Mapping[str, JSON] = spec.get("matchConstraints") or {}
    if not _covers(constraints):
        return False
    return any(_writes_approver(mutation) for mutation in spec.get("mutations") or [])


def _binds_everywhere(binding: Mapping[str, JSON], names: set[str]) -> bool:
    spec: Mapping[str, JSON] = binding.get("spec") or {}
    if spec.get("policyName") not in names:
        return False
    matched: Mapping[str, JSON] = spec.get("matchResources") or {}
    return _covers(matched, rules_optional=True)


def _covers(match: Mapping[str, JSON], *, rules_optional: bool = False) -> bool:
    """Whether a match (the policy's constraints, a binding's resources) takes in every Approval create."""
    for selector in ("namespaceSelector", "objectSelector"):
        chosen = match.get(selector) or {}
        if chosen.get("matchLabels") or chosen.get("matchExpressions"):
            return False
    if any(_rule_takes_approvals(rule) for rule in match.get("excludeResourceRules") or []):
        return False  # even one excluded name is an Approval nobody stamps
    rules = match.get("resourceRules") or []
    if not rules:
        return rules_optional
    return any(_rule_takes_approvals(rule) and not rule.get("resourceNames") for rule in rules)


def _rule_takes_approvals(rule: Mapping[str, JSON]) -> bool:
    """Whether the rule matches creating Approvals (some of them, if it lists resourceNames)."""

    def has(key: str, *values: str) -> bool:
        return bool(set(rule.get(key) or []) & {"*", *values})

    scope = rule.get("scope") or "*"
    return (
        has("apiGroups", GROUP)
        and has("apiVersions", VERSION)
        and has("resources", "approvals", "*/*")
        and has("operations", "CREATE")
        and scope in ("*", "Namespaced")
    )


def _writes_approver(mutation: Mapping[str, JSON]) -> bool:
    text = json.dumps(mutation)
    return "request.userInfo.username" in text and "approver" in text
