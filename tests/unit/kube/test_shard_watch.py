"""The watch filter of an operator replica among several: which objects reach its kopf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cerebelum_operator.kube.shard_watch import SHARD_LABEL, ShardWatch
from cerebelum_operator.model.shards import shard_of

SHARDS = 16


def execution(name: str, uid: str, *, label: str | None = None, kind: str = "ADDED") -> dict[str, Any]:
    labels = {SHARD_LABEL: label} if label is not None else {}
    return {"type": kind, "object": {"metadata": {"namespace": "ns", "name": name, "uid": uid, "labels": labels}}}


def request(target: str, *, annotation: str | None = None) -> dict[str, Any]:
    annotations = {SHARD_LABEL: annotation} if annotation is not None else {}
    metadata = {"namespace": "ns", "name": f"ok-{target}", "annotations": annotations}
    return {"type": "ADDED", "object": {"metadata": metadata, "spec": {"execution": target}}}


def uid_in(shard: int) -> str:
    return next(f"uid-{i}" for i in range(10_000) if shard_of(f"uid-{i}", shards=SHARDS) == shard)


def test_an_execution_reaches_kopf_only_on_the_replica_owning_its_uids_shard() -> None:
    mine = ShardWatch(shards=SHARDS, owned=lambda: {3})
    other = ShardWatch(shards=SHARDS, owned=lambda: {4})
    event = execution("a", uid_in(3))
    assert mine.admits("executions", event)
    assert not other.admits("executions", event)
    assert other.dropped == 1


def test_the_shard_label_the_operator_writes_on_a_child_wins_over_the_uid() -> None:
    watch = ShardWatch(shards=SHARDS, owned=lambda: {5})
    assert watch.admits("executions", execution("child", uid_in(9), label="5"))
    assert not watch.admits("executions", execution("child2", uid_in(5), label="9"))
    # A label that is no shard of this store is ignored: the uid decides.
    assert watch.admits("executions", execution("odd", uid_in(5), label="99"))
    assert watch.admits("executions", execution("odd2", uid_in(5), label="../x"))


def test_an_approval_follows_its_execution_as_watched_and_an_unknown_one_goes_to_shard_0s_owner() -> None:
    owner_of_7 = ShardWatch(shards=SHARDS, owned=lambda: {7})
    owner_of_0 = ShardWatch(shards=SHARDS, owned=lambda: {0})
    target = execution("run-1", uid_in(7))
    owner_of_7.admits("executions", target)
    owner_of_0.admits("executions", target)  # every replica learns the shard, even of what it drops
    assert owner_of_7.admits("approvals", request("run-1"))
    assert not owner_of_0.admits("approvals", request("run-1"))
    assert owner_of_0.admits("signals", request("never-seen"))
    assert not owner_of_7.admits("signals", request("never-seen"))
    # Handed on: the shard written on it by the replica that looked the execution up.
    assert owner_of_7.admits("signals", request("never-seen", annotation="7"))


def test_a_deleted_execution_is_forgotten_and_schedules_and_workflows_go_where_they_should() -> None:
    watch = ShardWatch(shards=SHARDS, owned=lambda: {0, 2})
    watch.admits("executions", execution("run", uid_in(2)))
    assert watch.uids_in({2}) == [uid_in(2)]
    watch.admits("executions", execution("run", uid_in(2), kind="DELETED"))
    assert watch.uids_in({2}) == []
    assert watch.target_shard("ns", "run") is None
    assert watch.admits("schedules", {"type": "ADDED", "object": {"metadata": {"namespace": "ns"}}})
    assert ShardWatch(shards=SHARDS, owned=lambda: {1}).admits(
        "workflows", {"type": "ADDED", "object": {"metadata": {"namespace": "ns"}}}
    )
    assert not ShardWatch(shards=SHARDS, owned=lambda: {1}).admits(
        "schedules", {"type": "ADDED", "object": {"metadata": {"namespace": "ns"}}}
    )


def test_an_operator_with_a_shard_group_that_is_no_dns_label_is_refused_before_anything_starts() -> None:
    import pytest

    from cerebelum_operator.kube.operator import OperatorConfig
    from cerebelum_operator.server import ServerConfig

    server = ServerConfig(database_url="postgresql://db/x")
    with pytest.raises(ValueError, match="a shard group is a DNS label of at most 40 characters"):
        OperatorConfig(
            server=server, shard_group="Bad_Group" + "x" * 50, advertise_address="10.0.0.1:7450", identity="a"
        )


def test_operator_replicas_serving_tls_need_the_ca_to_verify_each_other_and_then_forward_over_tls(
    tmp_path: Path,
) -> None:
    import pytest

    from cerebelum_operator.kube.operator import OperatorConfig
    from cerebelum_operator.server import PeerTls, ServerConfig, TlsFiles

    tls = TlsFiles(certificate=tmp_path / "tls.crt", private_key=tmp_path / "tls.key")

    def replica(server: ServerConfig) -> OperatorConfig:
        return OperatorConfig(server=server, shard_group="cerebelum", advertise_address="10.0.0.1:7450", identity="a")

    with pytest.raises(ValueError, match="give --peer-tls-ca"):
        replica(ServerConfig(database_url="postgresql://db/x", tls=tls))
    peer = PeerTls(ca=tmp_path / "ca.crt", server_name="cerebelum.ns.svc")
    replica(ServerConfig(database_url="postgresql://db/x", tls=tls, peer_tls=peer))
    assert dict(peer.options())["grpc.ssl_target_name_override"] == "cerebelum.ns.svc"
    with pytest.raises(ValueError, match="--peer-tls-ca needs --tls-cert"):
        ServerConfig(peer_tls=peer)
