"""Several operator replicas active at once (issue 21, scale-out on Kubernetes), on a real
kube-apiserver and a real PostgreSQL, each replica a real `cerebelum operator --shard-group`
process bound to the chart's RBAC, workers real processes that poll every replica.

The replicas split the shards through Leases; each starts and projects the Executions of its own
shards (the others' never reach its kopf), forwards calls about the others' executions, and when
one is SIGKILLed the survivors take its shards once its Leases run out and finish its executions,
and cancel those deleted while nobody owned their shard.
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

from cerebelum_operator.model.shards import shard_of
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


def phases(control_plane: ControlPlane, namespace: str, *, prefix: str = "") -> dict[str, str]:
    """Each Execution's phase, by name (those whose name starts with `prefix`)."""
    items = kubectl_json(control_plane, "get", "executions", "-n", namespace)["items"]
    return {
        item["metadata"]["name"]: (item.get("status") or {}).get("phase", "")
        for item in items
        if item["metadata"]["name"].startswith(prefix)
    }


def apply(control_plane: ControlPlane, namespace: str, documents: list[Any]) -> None:
    result = apply_yaml(control_plane, yaml.safe_dump_all(documents), namespace=namespace)
    assert result.returncode == 0, result.stderr


GATED = {
    "apiVersion": "cerebelum.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "gated"},
    "spec": {"taskQueue": "test", "timeline": ["s1", "go", "s2"], "steps": {"go": {"approval": {}}}},
}


def gated_execution(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "cerebelum.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"workflow": "gated", "input": {}},
    }


def shards_of(control_plane: ControlPlane, namespace: str, holder: str) -> set[int]:
    owners = kube.shard_owners(control_plane, f"g-{namespace}")
    return {int(lease.rsplit("-", 1)[1]) for lease, owner in owners.items() if owner == holder}


def held_in_shards(
    control_plane: ControlPlane, namespace: str, theirs: set[int], *, wanted: int, prefix: str
) -> list[str]:
    """Create gated Executions one by one until `wanted` of them are in shards `theirs` (each lands
    in a shard by its uid); the names of those."""
    found: list[str] = []
    for i in range(64):
        name = f"{prefix}-{i}"
        apply(control_plane, namespace, [gated_execution(name)])
        uid = kubectl_json(control_plane, "get", "execution", name, "-n", namespace)["metadata"]["uid"]
        if shard_of(uid, shards=SHARDS) in theirs:
            found.append(name)
            if len(found) == wanted:
                return found
    raise AssertionError(f"64 Executions and fewer than {wanted} in shards {sorted(theirs)}")


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
        # Executions of the first replica's shards, to be deleted while it is dead: their deletion
        # reaches no replica's kopf (the survivor's filter drops it until it owns their shard).
        apply(control_plane, namespace, [GATED])
        first_shards = shards_of(control_plane, namespace, "replica-a")
        held = held_in_shards(control_plane, namespace, first_shards, wanted=2, prefix="held")
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
            lambda: sorted(phases(control_plane, namespace, prefix="nap-").values()) == ["Sleeping"] * EXECUTIONS,
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

        wait_until(
            lambda: all(phases(control_plane, namespace).get(name) == "WaitingForApproval" for name in held),
            within=60,
            what="the held executions waiting for an approval that never comes",
        )
        first.kill()  # its Leases run out (6 s), then the survivor takes its shards and their work
        for name in held:
            control_plane.kubectl("delete", "execution", name, "-n", namespace, "--wait=false")
        # And one created while its shard has no owner: no kopf puts its finalizer on it.
        orphans = held_in_shards(control_plane, namespace, first_shards, wanted=1, prefix="orphan")
        wait_until(
            lambda: shard_holders(control_plane, namespace) == Counter({"replica-b": 16}),
            within=60,
            what="the survivor to hold every shard",
        )
        # The survivor cancels them (kopf's delete handler, brought by its adoption), then they go.
        wait_until(
            lambda: not set(held) & set(phases(control_plane, namespace)),
            within=60,
            what=f"the executions deleted while their shard had no owner ({held}) to be cancelled and gone",
        )
        # The survivor adopted the orphan; deleted now, it waits for its cancel as any other.
        wait_until(
            lambda: all(phases(control_plane, namespace).get(name) == "WaitingForApproval" for name in orphans),
            within=60,
            what=f"the executions created while their shard had no owner ({orphans}) to run on the survivor",
        )
        for name in orphans:
            control_plane.kubectl("delete", "execution", name, "-n", namespace, "--wait=false")
        wait_until(
            lambda: not set(orphans) & set(phases(control_plane, namespace)),
            within=60,
            what=f"the adopted executions ({orphans}) to be gone once deleted",
        )
        survivor_log = second.log_path.read_text()
        for name in [*held, *orphans]:
            assert f"its Execution {namespace}/{name} was deleted" in survivor_log, name
        wait_until(
            lambda: metric(second_health, "cerebelum_kube_objects_adopted") > 0,
            within=30,
            what="the survivor to adopt the dead replica's Executions",
        )
        wait_until(
            lambda: sorted(phases(control_plane, namespace, prefix="nap-").values()) == ["Succeeded"] * EXECUTIONS,
            within=90,
            what=f"all {EXECUTIONS} executions to succeed on the survivor",
        )
        runs = Counter(
            (record["execution"], record["step"]) for record in read_ledger(ledger) if record["event"] == "run"
        )
        uids = {
            item["metadata"]["uid"]
            for item in kubectl_json(control_plane, "get", "executions", "-n", namespace)["items"]
            if item["metadata"]["name"].startswith("nap-")
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
        names = [f"gated-{i}" for i in range(6)]
        apply(control_plane, namespace, [GATED, *(gated_execution(name) for name in names)])
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
