"""Several operator replicas active at once (issue 21, scale-out on Kubernetes), on a real
kube-apiserver and a real PostgreSQL, each replica a real `cerebelum operator --shard-group`
process bound to the chart's RBAC, workers real processes that poll every replica.

The replicas split the shards through Leases; each starts and projects the Executions of its own
shards (the others' never reach its kopf), forwards calls about the others' executions, and when
one is SIGKILLed the survivors take its shards once its Leases run out and finish its executions.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import WORKER_SCRIPT, read_ledger
from tests.support import kube
from tests.support.control_plane import ControlPlane
from tests.support.kube import apply_yaml, kubectl_json, service_account_kubeconfig
from tests.support.processes import OperatorProcess, WorkerProcess, free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

SHARDS = 16
EXECUTIONS = 12


def replica(
    control_plane: ControlPlane, tmp_path: Path, database_url: str, namespace: str, name: str
) -> tuple[OperatorProcess, int]:
    health = free_port()
    process = OperatorProcess(
        database_url=database_url,
        log_path=tmp_path / f"{name}.log",
        kubeconfig=service_account_kubeconfig(control_plane, tmp_path / f"{name}.kubeconfig"),
        identity=name,
        extra_args=(
            *("--namespace", namespace, "--shard-group", f"g-{namespace}", "--status-interval", "0.5"),
            *("--auth", "none", "--trust-claimed-approver", "--health-address", f"127.0.0.1:{health}"),
        ),
    )
    process.extra_args = (*process.extra_args, "--advertise-address", process.address)
    return process, health


@dataclass
class Replicas:
    first: OperatorProcess
    second: OperatorProcess
    first_health: int
    second_health: int


@contextmanager
def two_replicas(
    control_plane: ControlPlane, tmp_path: Path, database_url: str, namespace: str, ledger: Path, *, worker_address: str
) -> Iterator[Replicas]:
    """Two replicas that split the shards 8/8, and a worker polling both (`worker_address` formats
    `{a},{b}` with their addresses); everything stopped, and the replicas' logs printed, on leaving."""
    (first, first_health), (second, second_health) = (
        replica(control_plane, tmp_path, database_url, namespace, name) for name in ("replica-a", "replica-b")
    )
    worker: WorkerProcess | None = None
    try:
        first.start()
        second.start()
        wait_until(
            lambda: shard_holders(control_plane, namespace) == Counter({"replica-a": 8, "replica-b": 8}),
            within=60,
            what="the two replicas to hold 8 shards each",
        )
        worker = WorkerProcess(
            script=WORKER_SCRIPT,
            address=worker_address.format(a=first.address, b=second.address),
            ledger=ledger,
            log_path=tmp_path / "worker.log",
        ).start()
        yield Replicas(first, second, first_health, second_health)
    finally:
        if worker is not None:
            worker.stop()
        for process in (first, second):
            process.stop()
        for process in (first, second):
            print(f"--- {process.identity} log ---\n{process.log_path.read_text()[-5000:]}")


def shard_holders(control_plane: ControlPlane, namespace: str) -> Counter[str]:
    """How many shard Leases of the group each replica holds."""
    return kube.shard_holders(control_plane, f"g-{namespace}")


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def phases(control_plane: ControlPlane, namespace: str) -> dict[str, str]:
    items = kubectl_json(control_plane, "get", "executions", "-n", namespace)["items"]
    return {item["metadata"]["name"]: (item.get("status") or {}).get("phase", "") for item in items}


def apply(control_plane: ControlPlane, namespace: str, documents: list[Any]) -> None:
    result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
    assert result.returncode == 0, result.stderr


def test_replicas_split_the_shards_run_their_own_executions_and_finish_a_killed_replicas(
    control_plane: ControlPlane,
    crds: list[str],
    operator_rbac: None,
    namespace: str,
    postgres_database_url: str,
    ledger: Path,
    tmp_path: Path,
) -> None:
    # Both replicas in gRPC's static list form (what a dns:/// name of the chart's headless Service
    # resolves to): a poller group each.
    with two_replicas(
        control_plane, tmp_path, postgres_database_url, namespace, ledger, worker_address="ipv4:{a},{b}"
    ) as replicas:
        first, second = replicas.first, replicas.second
        first_health, second_health = replicas.first_health, replicas.second_health
        apply(
            control_plane,
            namespace,
            [
                {
                    "apiVersion": "cerebelum.io/v1alpha1",
                    "kind": "Workflow",
                    "metadata": {"name": "napper"},
                    "spec": {"taskQueue": "test", "timeline": ["s1", "nap", "s2"]},
                },
                *(
                    {
                        "apiVersion": "cerebelum.io/v1alpha1",
                        "kind": "Execution",
                        "metadata": {"name": f"nap-{i}"},
                        "spec": {"workflow": "napper", "input": {"sleep_ms": 4000}},
                    }
                    for i in range(EXECUTIONS)
                ),
            ],
        )
        wait_until(
            lambda: sorted(phases(control_plane, namespace).values()) == ["Sleeping"] * EXECUTIONS,
            within=60,
            what=f"all {EXECUTIONS} executions asleep after s1",
        )
        # Each replica started and projected its own shards' executions, and only those.
        started = {
            name: metric(port, 'cerebelum_kube_api_writes_total{kind="status"}')
            for name, port in (("a", first_health), ("b", second_health))
        }
        assert all(count > 0 for count in started.values()), started
        owned = [metric(port, "cerebelum_shards_owned") for port in (first_health, second_health)]
        assert owned == [8.0, 8.0], owned
        # Each replica's kopf never saw the other's Executions: their events were dropped before it.
        assert all(
            metric(port, "cerebelum_kube_watch_events_of_other_replicas") > 0 for port in (first_health, second_health)
        )

        first.kill()  # its Leases run out (6 s), then the survivor takes its shards and their work
        wait_until(
            lambda: shard_holders(control_plane, namespace) == Counter({"replica-b": 16}),
            within=60,
            what="the survivor to hold every shard",
        )
        wait_until(
            lambda: metric(second_health, "cerebelum_kube_objects_adopted") > 0,
            within=30,
            what="the survivor to adopt the dead replica's Executions",
        )
        wait_until(
            lambda: sorted(phases(control_plane, namespace).values()) == ["Succeeded"] * EXECUTIONS,
            within=90,
            what=f"all {EXECUTIONS} executions to succeed on the survivor",
        )
        runs = Counter(
            (record["execution"], record["step"]) for record in read_ledger(ledger) if record["event"] == "run"
        )
        uids = {
            item["metadata"]["uid"]
            for item in kubectl_json(control_plane, "get", "executions", "-n", namespace)["items"]
        }
        for uid in uids:
            assert runs[(uid, "s1")] >= 1 and runs[(uid, "s2")] >= 1, (uid, runs)
        assert "Traceback" not in second.log_path.read_text()


def test_an_approval_reaches_the_replica_that_owns_its_execution_whichever_shard_it_is_in(
    control_plane: ControlPlane,
    crds: list[str],
    operator_rbac: None,
    namespace: str,
    postgres_database_url: str,
    ledger: Path,
    tmp_path: Path,
) -> None:
    with two_replicas(control_plane, tmp_path, postgres_database_url, namespace, ledger, worker_address="{a},{b}"):
        gated = {
            "apiVersion": "cerebelum.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "gated"},
            "spec": {"taskQueue": "test", "timeline": ["s1", "go", "s2"], "steps": {"go": {"approval": {}}}},
        }
        names = [f"gated-{i}" for i in range(6)]
        apply(
            control_plane,
            namespace,
            [
                gated,
                *(
                    {
                        "apiVersion": "cerebelum.io/v1alpha1",
                        "kind": "Execution",
                        "metadata": {"name": name},
                        "spec": {"workflow": "gated", "input": {}},
                    }
                    for name in names
                ),
            ],
        )
        wait_until(
            lambda: sorted(phases(control_plane, namespace).values()) == ["WaitingForApproval"] * len(names),
            within=60,
            what="every execution waiting for its approval",
        )
        apply(
            control_plane,
            namespace,
            [
                {
                    "apiVersion": "cerebelum.io/v1alpha1",
                    "kind": "Approval",
                    "metadata": {"name": f"ok-{name}"},
                    "spec": {"execution": name, "step": "go", "approver": "ops"},
                }
                for name in names
            ],
        )
        wait_until(
            lambda: sorted(phases(control_plane, namespace).values()) == ["Succeeded"] * len(names),
            within=60,
            what="every execution to succeed once approved",
        )
        approvals = kubectl_json(control_plane, "get", "approvals", "-n", namespace)["items"]
        assert sorted(str((a.get("status") or {}).get("phase")) for a in approvals) == ["Applied"] * len(names), (
            json.dumps([a.get("status") for a in approvals])
        )
