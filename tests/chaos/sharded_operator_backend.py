"""Chaos with several operator replicas active at once (`cerebelum operator --shard-group`).

Three replicas share one PostgreSQL store, each owning the shards whose Leases it holds; the
executions are Execution objects (their uids spread over every shard), decisions are Approvals,
a cancellation deletes the Execution, as in `operator_backend`. Each kill is one replica's SIGKILL:
its Leases run out (the operators' `--lease-duration 6`), the others take its shards and adopt
their objects, then it comes back and takes its share again, so shards move both ways while the
workload runs. Workers reach every replica through one round-robin channel.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from tests.support.kube import service_account_kubeconfig
from tests.support.processes import OperatorProcess

from .operator_backend import API, OperatorBackend
from .workload import SPEC, WORKFLOW

__all__ = ["ShardedOperatorBackend"]


@dataclass
class ShardedOperatorBackend(OperatorBackend):
    database_url: str = ""
    replicas: int = 3
    operators: list[OperatorProcess] = field(default_factory=list)
    kills_by_replica: dict[str, int] = field(default_factory=dict)

    @property
    def worker_addresses(self) -> list[str]:
        return ["ipv4:" + ",".join(operator.address for operator in self.operators)]

    def store_url(self) -> str:
        return self.database_url

    def launch(self) -> None:
        kubeconfig = service_account_kubeconfig(self.control_plane, self.workdir / "operator.kubeconfig")
        for n in range(self.replicas):
            operator = OperatorProcess(
                database_url=self.database_url,
                log_path=self.workdir / f"operator-{n}.log",
                kubeconfig=kubeconfig,
                identity=f"replica-{n}",
                extra_args=(
                    *("--namespace", self.namespace, "--shard-group", f"chaos-{self.namespace}"),
                    *("--status-interval", "0.5", "--auth", "none"),
                ),
            )
            operator.extra_args = (*operator.extra_args, "--advertise-address", operator.address)
            self.operators.append(operator)
        for operator in self.operators:
            operator.start()
        self.operator = self.operators[0]
        self.approver = self._kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").strip()
        self._apply({"apiVersion": API, "kind": "Workflow", "metadata": {"name": WORKFLOW}, "spec": SPEC})

    def kill_engine(self, rng: random.Random) -> None:
        victim = rng.choice(self.operators)
        self.kills_by_replica[victim.identity] = self.kills_by_replica.get(victim.identity, 0) + 1
        victim.kill()
        time.sleep(rng.uniform(0, 8))  # sometimes past its Leases (6 s): the others take its shards
        victim.launch()
        victim.wait_ready(timeout=90)

    def exit_status(self) -> int | None:
        for operator in self.operators:
            if operator.process is not None and (status := operator.process.poll()) is not None:
                return status
        return None

    def restart_engine(self) -> None:
        for operator in self.operators:
            if operator.process is not None and operator.process.poll() is not None:
                operator.launch()
                operator.wait_ready(timeout=90)

    def shutdown(self) -> None:
        for operator in self.operators:
            operator.stop()
