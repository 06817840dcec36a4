"""The chaos driver's operator mode: `cerebelum operator` against the real test kube-apiserver.

Executions are Execution objects created with kubectl, decisions are Approval objects (their
approver stamped by the chart's admission policy with the requesting user), a cancellation is
deleting the Execution. The operator process is what gets SIGKILLed: what a killed operator pod
is, minus the kubelet that would start it again, which the driver does instead. The store is the
operator's SQLite file, read directly for the history checks; `final_checks` then holds the
Kubernetes side to the same standard: every Execution object shows its terminal phase, every
cancelled one is gone, every Approval says Applied.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.control_plane import ControlPlane
from tests.support.kube import service_account_kubeconfig
from tests.support.processes import OperatorProcess

from .driver import TransientError
from .invariants import Row
from .workload import SPEC, WORKFLOW

__all__ = ["OperatorBackend"]

API = "cerebelum.io/v1alpha1"
LOST_LEASE = 75  # a leader that cannot renew its Lease exits with this, for its pod to be started again


class KubectlFailed(TransientError):
    """kubectl failed: the driver tries again, as it does when the engine is down."""


@dataclass
class OperatorBackend:
    control_plane: ControlPlane
    namespace: str
    workdir: Path
    name: str = "operator/sqlite"
    operator: OperatorProcess | None = None
    approver: str = ""
    known_issues: dict[str, int] = field(default_factory=dict)
    _uids: dict[str, str] = field(default_factory=dict)
    _decided: set[str] = field(default_factory=set)

    @property
    def address(self) -> str:
        assert self.operator is not None
        return self.operator.address

    def store_url(self) -> str:
        return f"sqlite:///{self.workdir / 'operator.db'}"

    def launch(self) -> None:
        self.operator = OperatorProcess(
            database_url=self.store_url(),
            log_path=self.workdir / "operator.log",
            kubeconfig=service_account_kubeconfig(self.control_plane, self.workdir / "operator.kubeconfig"),
            extra_args=(
                *("--namespace", self.namespace, "--lease-name", f"operator-{self.namespace}"),
                *("--status-interval", "0.5", "--auth", "none"),
            ),
        )
        self.operator.start()
        self.approver = self._kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").strip()
        self._apply({"apiVersion": API, "kind": "Workflow", "metadata": {"name": WORKFLOW}, "spec": SPEC})

    def kill_engine(self, rng: random.Random) -> None:
        assert self.operator is not None
        self.operator.kill()
        time.sleep(rng.uniform(0, 0.5))
        self.operator.launch()
        self.operator.wait_ready(timeout=90)

    def exit_status(self) -> int | None:
        assert self.operator is not None and self.operator.process is not None
        return self.operator.process.poll()

    def restart_engine(self) -> None:
        assert self.operator is not None
        self.operator.launch()
        self.operator.wait_ready(timeout=90)

    @property
    def expected_exits(self) -> frozenset[int]:
        return frozenset({LOST_LEASE})

    def start_execution(self, key: str, input: dict[str, Any]) -> None:
        created = self._apply(
            {
                "apiVersion": API,
                "kind": "Execution",
                "metadata": {"name": key},
                "spec": {"workflow": WORKFLOW, "input": input},
            }
        )
        self._uids[key] = created["metadata"]["uid"]

    def waiting_for_approval(self) -> list[str]:
        waiting = []
        for item in self._executions():
            if (item.get("status") or {}).get("phase") == "WaitingForApproval":
                waiting.append(item["metadata"]["name"])
        return [key for key in waiting if key not in self._decided]

    def decide(self, key: str, decision: str, input: dict[str, Any]) -> None:
        if decision == "cancel":
            self._kubectl("delete", "execution", key, "-n", self.namespace, "--wait=false")
        else:
            spec: dict[str, Any] = {"execution": key, "step": "gate"}
            if decision == "reject":
                spec |= {"decision": "Reject", "reason": "the chaos suite says no"}
            else:
                spec |= {"decision": "Approve", "payload": {"ticket": f"T-{input['n']}"}}
            self._apply({"apiVersion": API, "kind": "Approval", "metadata": {"name": f"{key}-gate"}, "spec": spec})
        self._decided.add(key)  # the Approval (or the deletion) is durable in the API server: once is enough

    def execution_ids(self, keys: list[str]) -> dict[str, str]:
        return {key: self._uids[key] for key in keys if key in self._uids}

    def shutdown(self) -> None:
        if self.operator is not None:
            self.operator.stop()

    def final_checks(self, keys: dict[str, dict[str, Any]], rows: dict[str, Row | None]) -> list[str]:
        """The Kubernetes side agrees with the store, once the status projection has caught up."""
        deadline = time.monotonic() + 90
        while True:
            self.known_issues.clear()
            problems = self._disagreements(keys, rows)
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(1)

    def _disagreements(self, keys: dict[str, dict[str, Any]], rows: dict[str, Row | None]) -> list[str]:
        shown = {item["metadata"]["name"]: item for item in self._executions()}
        approvals = {item["metadata"]["name"]: item for item in self._list("approvals")}
        problems = []
        for key, input in keys.items():
            row = rows.get(key)
            item = shown.get(key)
            if input["fate"] == "cancelled":
                if item is not None:
                    phase = (item.get("status") or {}).get("phase")
                    meta = {k: item["metadata"].get(k) for k in ("deletionTimestamp", "finalizers", "annotations")}
                    problems.append(
                        f"{key}: cancelled by deleting it, but the Execution is still there ({phase}): {meta}"
                    )
                continue
            if item is None:
                problems.append(f"{key}: the Execution object is gone")
                continue
            phase = (item.get("status") or {}).get("phase")
            if row is not None and phase != row.phase:
                problems.append(f"{key}: the Execution shows {phase}, the store says {row.phase}")
            if item["metadata"].get("finalizers"):
                problems.append(f"{key}: a finished Execution still holds {item['metadata']['finalizers']}")
            approval = approvals.get(f"{key}-gate")
            if input["fate"] in ("rejected", "standard", "express", "diverted"):
                status = (approval or {}).get("status") or {}
                if status.get("phase") != "Applied":
                    problems.append(f"{key}: its Approval is {status.get('phase')}: {status.get('message')}")
        return problems

    # -- kubectl ----------------------------------------------------------------------------------
    def _executions(self) -> list[dict[str, Any]]:
        return self._list("executions")

    def _list(self, resource: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self._kubectl("get", resource, "-n", self.namespace, "-o", "json"))[
            "items"
        ]
        return items

    def _apply(self, document: dict[str, Any]) -> dict[str, Any]:
        applied: dict[str, Any] = json.loads(
            self._kubectl("apply", "-n", self.namespace, "-f", "-", "-o", "json", input=json.dumps(document))
        )
        return applied

    def _kubectl(self, *args: str, input: str | None = None) -> str:
        try:
            result = self.control_plane.kubectl(*args, input=input, check=True)
        except subprocess.CalledProcessError as failed:
            raise KubectlFailed(f"kubectl {' '.join(args)}: {failed.stderr}") from failed
        return str(result.stdout)
