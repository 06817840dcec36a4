"""Whether an Approval's `spec.approver` (or a Signal's `spec.sender`) can be believed: is the
admission policy that stamps it installed?

kopf handlers never see who created an object, so the operator cannot tell who approved or who
sent a signal; the chart's MutatingAdmissionPolicies write the requesting user into
`spec.approver` of every new Approval and `spec.sender` of every new Signal. Without such a
policy (or its binding) the field is whatever the creator typed, so the operator refuses those
objects unless it finds a bound policy that covers every one of them (default closed), or it was
started with `--trust-claimed-approver` (which also trusts a claimed sender).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lightkube.core.exceptions import ApiError
from lightkube.resources.admissionregistration_v1 import MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding

from ..runtime import Clock
from .resources import GROUP, VERSION

__all__ = [
    "APPROVER",
    "SENDER",
    "AdmissionPolicyCheck",
    "ApproverCheck",
    "PolicyReader",
    "Stamp",
    "TrustClaimedApprover",
    "Unreachable",
    "approver_policy_problem",
    "stamp_policy_problem",
]

log = logging.getLogger(__name__)

JSON = Any


@dataclass(frozen=True, slots=True)
class Stamp:
    """A field that admission stamps with the requesting user on every new object of one resource."""

    kind: str  # Approval
    resource: str  # approvals
    field: str  # approver

    @property
    def remedy(self) -> str:
        return (
            f"install the chart's admission policies (Helm value approvalPolicy.enabled=true: a "
            f"MutatingAdmissionPolicy and its binding that write the requesting user into spec.{self.field} of "
            f"every new {self.kind}), or start the operator with --trust-claimed-approver to accept the "
            f"{self.field} a {self.kind} claims"
        )


APPROVER = Stamp("Approval", "approvals", "approver")
SENDER = Stamp("Signal", "signals", "sender")
PERMISSION = (
    "get, list and watch on mutatingadmissionpolicies and mutatingadmissionpolicybindings "
    "(admissionregistration.k8s.io)"
)


class Unreachable(Exception):
    """The API server did not answer the check; try again later."""


class ApproverCheck(Protocol):
    #: Whether a missing stamped field is acceptable (recorded as unknown) rather than refused.
    trusts_claims: bool

    async def problem(self, stamp: Stamp = APPROVER) -> str | None:
        """None when the stamped field (`spec.approver` by default) is trustworthy; otherwise why not
        and what to install."""
        ...


class TrustClaimedApprover:
    """The opt-out: believe whatever `spec.approver` or `spec.sender` says (`--trust-claimed-approver`)."""

    trusts_claims = True

    async def problem(self, stamp: Stamp = APPROVER) -> str | None:
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
        self._listed: tuple[int, list[dict[str, JSON]], list[dict[str, JSON]], str | None] | None = None

    async def problem(self, stamp: Stamp = APPROVER) -> str | None:
        """Both stamps are judged from one read of the policies, made at most every `ttl_ms`."""
        now = self.clock.now_ms()
        if self._listed is None or now >= self._listed[0]:
            self.reads += 1
            try:
                policies = await self.api.list_all(MutatingAdmissionPolicy)
                bindings = await self.api.list_all(MutatingAdmissionPolicyBinding)
            except ApiError as error:
                if error.status.code not in (401, 403, 404):
                    raise Unreachable(f"could not read the admission policies: {error.status.message}") from error
                # Forbidden: the chart's RBAC is older than the operator; not found: the API server has no such API.
                found = (
                    f"the operator could not read the admission policies "
                    f"({error.status.reason}: {error.status.message})"
                )
                self._listed = (now + self.ttl_ms, [], [], f"{found}; it needs {PERMISSION}")
            else:
                self._listed = (now + self.ttl_ms, policies, bindings, None)
        _, policies, bindings, unreadable = self._listed
        answer = unreadable or stamp_policy_problem(policies, bindings, stamp)
        if answer is not None:
            answer = f"the {stamp.field} cannot be verified: {answer}; {stamp.remedy}"
        return answer


def approver_policy_problem(
    policies: Sequence[Mapping[str, JSON]], bindings: Sequence[Mapping[str, JSON]]
) -> str | None:
    """None if some bound policy overwrites `spec.approver` of every new Approval; else what is missing."""
    return stamp_policy_problem(policies, bindings, APPROVER)


def stamp_policy_problem(
    policies: Sequence[Mapping[str, JSON]], bindings: Sequence[Mapping[str, JSON]], stamp: Stamp
) -> str | None:
    """None if some bound policy overwrites `spec.<field>` of every new object of the stamp's
    resource; else what is missing."""
    stamping = [policy for policy in policies if _stamps_every(policy, stamp)]
    if not stamping:
        return (
            f"no MutatingAdmissionPolicy writes request.userInfo.username into spec.{stamp.field} "
            f"of every new {stamp.kind}"
        )
    names = {str((policy.get("metadata") or {}).get("name")) for policy in stamping}
    if any(_binds_everywhere(binding, names, stamp) for binding in bindings):
        return None
    listed = ", ".join(sorted(names))
    return f"the MutatingAdmissionPolicy {listed} is not bound to every namespace (no MutatingAdmissionPolicyBinding)"


def _stamps_every(policy: Mapping[str, JSON], stamp: Stamp) -> bool:
    spec: Mapping[str, JSON] = policy.get("spec") or {}
    if spec.get("failurePolicy", "Fail") != "Fail" or spec.get("matchConditions") or spec.get("paramKind"):
        return False  # it may let an object through unstamped
    constraints: Mapping[str, JSON] = spec.get("matchConstraints") or {}
    if not _covers(constraints, stamp):
        return False
    return any(_writes(mutation, stamp) for mutation in spec.get("mutations") or [])


def _binds_everywhere(binding: Mapping[str, JSON], names: set[str], stamp: Stamp) -> bool:
    spec: Mapping[str, JSON] = binding.get("spec") or {}
    if spec.get("policyName") not in names:
        return False
    matched: Mapping[str, JSON] = spec.get("matchResources") or {}
    return _covers(matched, stamp, rules_optional=True)


def _covers(match: Mapping[str, JSON], stamp: Stamp, *, rules_optional: bool = False) -> bool:
    """Whether a match (the policy's constraints, a binding's resources) takes in every create of the resource."""
    for selector in ("namespaceSelector", "objectSelector"):
        chosen = match.get(selector) or {}
        if chosen.get("matchLabels") or chosen.get("matchExpressions"):
            return False
    if any(_rule_takes(rule, stamp) for rule in match.get("excludeResourceRules") or []):
        return False  # even one excluded name is an object nobody stamps
    rules = match.get("resourceRules") or []
    if not rules:
        return rules_optional
    return any(_rule_takes(rule, stamp) and not rule.get("resourceNames") for rule in rules)


def _rule_takes(rule: Mapping[str, JSON], stamp: Stamp) -> bool:
    """Whether the rule matches creating the stamp's resource (some of them, if it lists resourceNames)."""

    def has(key: str, *values: str) -> bool:
        return bool(set(rule.get(key) or []) & {"*", *values})

    scope = rule.get("scope") or "*"
    return (
        has("apiGroups", GROUP)
        and has("apiVersions", VERSION)
        and has("resources", stamp.resource, "*/*")
        and has("operations", "CREATE")
        and scope in ("*", "Namespaced")
    )


def _writes(mutation: Mapping[str, JSON], stamp: Stamp) -> bool:
    text = json.dumps(mutation)
    return "request.userInfo.username" in text and stamp.field in text
