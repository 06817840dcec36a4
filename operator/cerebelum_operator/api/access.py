"""Which authenticated callers may take which tasks, and who may use the client API.

A policy is a list of rules, loaded from YAML (``cerebelum operator --access-policy FILE``)::

    workers:
      - subjects: ["system:serviceaccount:payments:*"]   # usernames (glob) or "group:<name>"
        namespaces: ["$self"]                            # "$self": the service account's own
        queues: ["billing", "billing-*"]                 # "*": any
    clients:
      - subjects: ["group:cerebelum-admins"]
        schedules: true                                  # may also manage schedules (default: no)
        taskQueues: true                                 # may pause and rate-limit task queues (default: no)
      - subjects: ["group:cerebelum-viewers"]
        readOnly: true                                   # may read executions and workflows, not act

A worker polling a queue gets tasks only of the namespaces its rules allow for that queue; a
queue no rule allows is refused with a message naming the queue. ``clients`` may call the
WorkflowService (start, approve, cancel, read); the ScheduleService only with ``schedules: true``,
because a schedule starts executions on its own, long after its author left: a right of its own,
closed unless granted. The TaskQueueService (pause, resume, rate limits) needs ``taskQueues:
true``: a task queue is shared by every namespace, so its setting is an operator's, not a tenant's.
A rule with ``readOnly: true`` grants only the reading calls (:data:`READ_RPCS`): the web UI shows
such a caller every page and no action, and the API refuses its actions.

The schema fails closed: a worker rule must name its namespaces and queues (nothing defaults to
"all"), and a field the policy does not honour is refused rather than ignored. ``clients`` rules
take ``subjects`` only, because a client may act on every namespace: a policy that seemed to
confine a client to one namespace would be a lie.

Every call must present a token (when the engine asks for one at all) except the methods named
in :data:`HEALTH_METHODS` and :data:`REFLECTION_METHODS`; the server's gate enforces that for
every service it serves (``server.gate``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .auth import Identity, PermissionDenied

__all__ = [
    "ALL_NAMESPACES",
    "HEALTH_METHODS",
    "READ_RPCS",
    "REFLECTION_METHODS",
    "AccessPolicy",
    "AccessRule",
    "PolicyError",
]

SELF = "$self"
ALL_NAMESPACES = None

# Answered without a token: a kubelet's gRPC probe or a load balancer has none, and the answer
# says only whether the engine serves. Nothing else of grpc.health.v1 is exempt.
HEALTH_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
# Answered without a token unless the engine runs with --no-reflection: reflection tells the API's
# schema, which the published .proto files tell anyway. v1 is named for when grpcio serves it;
# until then clients (grpcurl) get UNIMPLEMENTED there and ask v1alpha.
REFLECTION_METHODS = frozenset(
    {
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
)

# The WorkflowService calls that change nothing: what a ``readOnly`` client rule grants.
READ_RPCS = frozenset(
    {
        "GetWorkflow",
        "ListWorkflows",
        "GetExecution",
        "ListExecutions",
        "GetHistory",
        "WaitExecution",
        "ListDeadLetters",
    }
)


class PolicyError(ValueError):
    """An access policy document that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class AccessRule:
    subjects: tuple[str, ...]
    namespaces: tuple[str, ...]  # no default: a rule says what it grants (a client rule: nothing)
    queues: tuple[str, ...]
    schedules: bool = False  # a client rule: may it also manage schedules (the ScheduleService)?
    task_queues: bool = False  # a client rule: may it pause and rate-limit task queues (TaskQueueService)?
    read_only: bool = False  # a client rule: only the reading calls (READ_RPCS), no action

    def applies_to(self, identity: Identity) -> bool:
        for subject in self.subjects:
            if subject.startswith("group:"):
                if any(fnmatch.fnmatchcase(group, subject[6:]) for group in identity.groups):
                    return True
            elif fnmatch.fnmatchcase(identity.username, subject):
                return True
        return False

    def allows_queue(self, queue: str) -> bool:
        return any(fnmatch.fnmatchcase(queue, pattern) for pattern in self.queues)

    def namespaces_for(self, identity: Identity) -> frozenset[str] | None:
        """The namespaces this rule grants (None: all of them)."""
        granted: set[str] = set()
        for namespace in self.namespaces:
            if namespace == "*":
                return ALL_NAMESPACES
            if namespace == SELF:
                own = identity.service_account_namespace
                if own is not None:
                    granted.add(own)
            else:
                granted.add(namespace)
        return frozenset(granted)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    workers: tuple[AccessRule, ...]
    clients: tuple[AccessRule, ...]

    @classmethod
    def allow_all(cls) -> AccessPolicy:
        """Every caller may do everything: dev mode, and the operator with ``--auth none``."""
        anyone = AccessRule(subjects=("*",), namespaces=("*",), queues=("*",), schedules=True, task_queues=True)
        return cls(workers=(anyone,), clients=(anyone,))

    @classmethod
    def kubernetes_default(cls) -> AccessPolicy:
        """A service account may take tasks of its own namespace, on any queue; no client API."""
        return cls(
            workers=(AccessRule(subjects=("system:serviceaccount:*",), namespaces=(SELF,), queues=("*",)),), clients=()
        )

    @classmethod
    def from_document(cls, document: Any) -> AccessPolicy:
        if not isinstance(document, Mapping):
            raise PolicyError("access policy: expected a mapping with 'workers' and 'clients'")
        unknown = set(document) - {"workers", "clients"}
        if unknown:
            raise PolicyError(f"access policy: unknown field(s) {sorted(unknown)}; expected 'workers' and 'clients'")
        return cls(
            workers=tuple(_rules(document.get("workers", []), "workers")),
            clients=tuple(_rules(document.get("clients", []), "clients")),
        )

    def worker_namespaces(self, identity: Identity, queue: str) -> frozenset[str] | None:
        """Namespaces whose tasks of ``queue`` this worker may take (None: all); raises if none."""
        granted: set[str] = set()
        for rule in self.workers:
            if rule.applies_to(identity) and rule.allows_queue(queue):
                namespaces = rule.namespaces_for(identity)
                if namespaces is ALL_NAMESPACES:
                    return ALL_NAMESPACES
                granted |= namespaces
        if not granted:
            raise PermissionDenied(f"{identity.username!r} may not take tasks of queue {queue!r} (access policy)")
        return frozenset(granted)

    def check_worker_task(self, identity: Identity, queue: str, namespace: str) -> None:
        """Raise unless this worker may hold a task of ``queue`` in ``namespace``."""
        allowed = self.worker_namespaces(identity, queue)
        if allowed is not ALL_NAMESPACES and namespace not in allowed:
            where = f"namespace {namespace!r}" if namespace else "the default namespace"
            raise PermissionDenied(f"{identity.username!r} may not take tasks of {where} (access policy)")

    def client_access(self, identity: Identity) -> str | None:
        """What the ``clients`` rules grant the caller: "act" (every call), "read" (READ_RPCS) or None."""
        granted: str | None = None
        for rule in self.clients:
            if rule.applies_to(identity):
                if not rule.read_only:
                    return "act"
                granted = "read"
        return granted

    def check_client(self, identity: Identity, rpc: str) -> None:
        access = self.client_access(identity)
        if access is None:
            raise PermissionDenied(f"{identity.username!r} may not call {rpc} (access policy 'clients')")
        if access == "read" and rpc not in READ_RPCS:
            raise PermissionDenied(
                f"{identity.username!r} may not call {rpc}: its access policy rules are 'readOnly: true'"
            )

    def check_schedules(self, identity: Identity, rpc: str) -> None:
        """Raise unless a ``clients`` rule with ``schedules: true`` applies to the caller."""
        if not any(rule.schedules and rule.applies_to(identity) for rule in self.clients):
            raise PermissionDenied(
                f"{identity.username!r} may not call {rpc} (access policy: no 'clients' rule with 'schedules: true')"
            )

    def check_task_queues(self, identity: Identity, rpc: str) -> None:
        """Raise unless a ``clients`` rule with ``taskQueues: true`` applies to the caller."""
        if not any(rule.task_queues and rule.applies_to(identity) for rule in self.clients):
            raise PermissionDenied(
                f"{identity.username!r} may not call {rpc} (access policy: no 'clients' rule with 'taskQueues: true')"
            )


def _rules(items: Any, section: str) -> Iterable[AccessRule]:
    if items is None:
        return
    if not isinstance(items, list):
        raise PolicyError(f"access policy: {section} must be a list of rules")
    for index, item in enumerate(items):
        where = f"access policy: {section}[{index}]"
        if not isinstance(item, Mapping):
            raise PolicyError(f"{where}: expected a mapping")
        if section == "clients":
            confining = sorted(set(item) & {"namespaces", "queues"})
            if confining:
                raise PolicyError(
                    f"{where}: {confining} cannot confine a client: a client may start, approve, cancel and read"
                    " executions of every namespace. Grant the client API only to subjects trusted with all of"
                    " them, and confine namespace users with Kubernetes RBAC on the custom resources instead"
                )
            allowed = {"subjects", "schedules", "taskQueues", "readOnly"}
        else:
            allowed = {"subjects", "namespaces", "queues"}
        unknown = set(item) - allowed
        if unknown:
            raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}; expected {sorted(allowed)}")
        subjects = _strings(item.get("subjects"), f"{where}.subjects")
        if section == "clients":
            schedules = item.get("schedules", False)
            if not isinstance(schedules, bool):
                raise PolicyError(f"{where}.schedules: expected true or false")
            task_queues = item.get("taskQueues", False)
            if not isinstance(task_queues, bool):
                raise PolicyError(f"{where}.taskQueues: expected true or false")
            read_only = item.get("readOnly", False)
            if not isinstance(read_only, bool):
                raise PolicyError(f"{where}.readOnly: expected true or false")
            if read_only and (schedules or task_queues):
                raise PolicyError(
                    f"{where}: a readOnly rule cannot also grant schedules or taskQueues, which act;"
                    " grant those in a rule of their own"
                )
            yield AccessRule(
                subjects=subjects,
                namespaces=(),
                queues=(),
                schedules=schedules,
                task_queues=task_queues,
                read_only=read_only,
            )
            continue
        for required, example in (
            ("namespaces", '["$self"] or ["team-a"]; "*" for all'),
            ("queues", '["billing"]; "*" for any'),
        ):
            if required not in item:
                raise PolicyError(f"{where}.{required} is required (nothing defaults to all): for example {example}")
        yield AccessRule(
            subjects=subjects,
            namespaces=_strings(item["namespaces"], f"{where}.namespaces"),
            queues=_strings(item["queues"], f"{where}.queues"),
        )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: expected a non-empty list of strings")
    return tuple(value)
