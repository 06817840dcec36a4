"""Two engines on one PostgreSQL store, each owning half the shards (a fixed split, issue 21).

Real processes: two `cerebelum dev --shards` engines, a worker polling each, and clients that
reach either engine. Every execution runs on the owner of its shard, whichever engine a client
called: calls for the other half are forwarded, and a start without an id stays where it came.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from cerebelum import Client, TlsSettings
from cerebelum_operator.model.shards import DEFAULT_SHARDS, shard_of
from cerebelum_operator.store.postgres import normalise_url
from tests.support.processes import EngineProcess, WorkerPool
from tests.support.security import GuardedEngine, self_signed_certificate
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TOKEN = "a-token-for-the-replicas-over-tls"
WORKER = Path(__file__).parent / "workers" / "greeting_worker.py"
GREET: dict[str, Any] = {
    "taskQueue": "test",
    "timeline": ["compose_greeting", "wait"],
    "steps": {
        "compose_greeting": {"args": {"greeting": "'Hello'", "name": "input.name"}},
        "wait": {"signal": {"name": "go", "timeout": "1h"}},
    },
    "output": "{'text': steps.compose_greeting.text, 'go': steps.wait}",
}
PARENT: dict[str, Any] = {
    "timeline": ["child"],
    "steps": {"child": {"child": {"workflow": "greet", "input": "{'name': input.name}"}}},
    "output": "steps.child",
}


def _engines(url: str, tmp_path: Path, shares: tuple[tuple[str, str], ...]) -> list[EngineProcess]:
    """`cerebelum dev --shards SHARE --replica NAME` for each (name, share), on one store; not started."""
    return [
        EngineProcess(
            database_url=url,
            log_path=tmp_path / f"engine-{name}.log",
            extra_args=("--shards", share, "--replica", name),
        )
        for name, share in shares
    ]


@pytest.fixture
def replicas(postgres_database_url: str, tmp_path: Path) -> Iterator[tuple[EngineProcess, EngineProcess]]:
    halves = (("a", "0-7"), ("b", "8-15"))
    engines = _engines(postgres_database_url, tmp_path, halves)
    for engine in engines:
        engine.start()
    pools = [
        WorkerPool(script=WORKER, address=engine.address, ledger=tmp_path / "ledger.jsonl", log_dir=tmp_path / name)
        for engine, (name, _) in zip(engines, halves, strict=True)
    ]
    for pool in pools:
        pool.log_dir.mkdir()
        pool.start()
    try:
        yield engines[0], engines[1]
    finally:
        for pool in pools:
            pool.stop_all()
        for engine in engines:
            engine.stop()


def _ids(owner_half: int, count: int, prefix: str) -> list[str]:
    """Ids in the shards of one half (0: shards 0-7, 1: 8-15)."""
    found = [
        f"{prefix}{n}" for n in range(10_000) if shard_of(f"{prefix}{n}", shards=DEFAULT_SHARDS) // 8 == owner_half
    ]
    return found[:count]


def _in_both_halves(per_half: int, prefix: str) -> list[str]:
    """`per_half` ids in each engine's half of the shards."""
    return [*_ids(0, per_half, f"{prefix}a-"), *_ids(1, per_half, f"{prefix}b-")]


def _start_each(client: Client, workflow: str, ids: list[str]) -> None:
    for execution_id in ids:
        client.start(workflow, {"name": execution_id}, execution_id=execution_id)


def _worker_pid_of(client: Client, execution_id: str) -> int:
    started = next(e for e in client.history(execution_id) if e.type == "StepStarted")
    return int(started.data["worker_id"].split("-")[-2])


def test_each_execution_runs_on_its_shards_owner_whichever_engine_was_called(
    replicas: tuple[EngineProcess, EngineProcess], postgres_database_url: str
) -> None:
    a, b = replicas
    with Client(address=a.address) as via_a, Client(address=b.address) as via_b:
        via_a.apply_workflow("greet", GREET)
        via_a.apply_workflow("parent", PARENT)
        mine, theirs = _ids(0, 4, "g"), _ids(1, 4, "g")
        for execution_id in mine + theirs:  # all through a: b's half is forwarded to b
            via_a.start("greet", {"name": execution_id}, execution_id=execution_id)
        unnamed = [via_b.start("greet", {"name": f"anon{n}"}).id for n in range(4)]  # placed in b's half
        parents = _ids(0, 2, "p") + _ids(1, 2, "p")
        for parent in parents:
            via_b.start("parent", {"name": parent}, execution_id=parent)

        for execution_id in mine + theirs + unnamed:  # signalled through the other engine than it started on
            (via_b if execution_id in mine else via_a).signal(execution_id, "go", {"from": "the other engine"})
        for execution_id in mine + theirs + unnamed:
            done = (via_a if execution_id in unnamed else via_b).wait(execution_id, timeout=120)
            assert done.phase == "Succeeded", (execution_id, done)
            assert done.output["text"].startswith("Hello, ")
        for parent in parents:
            child = next(c for c in via_a.list(workflow="greet", limit=1000) if c.id.startswith(f"{parent}:child"))
            via_a.signal(child.id, "go", None)
            assert via_b.wait(parent, timeout=120).phase == "Succeeded"

        workers: dict[str, set[int]] = {a.address: set(), b.address: set()}
        for execution_id in mine + theirs + unnamed:
            workers[a.address if execution_id in mine else b.address].add(_worker_pid_of(via_a, execution_id))
        assert all(shard_of(execution_id, shards=DEFAULT_SHARDS) >= 8 for execution_id in unnamed)
        assert len(workers[a.address]) == len(workers[b.address]) == 1 and workers[a.address] != workers[b.address]

    database = create_engine(normalise_url(postgres_database_url))
    try:
        with database.connect() as conn:
            owners: dict[int, str] = {r[0]: r[1] for r in conn.execute(text("SELECT shard, owner FROM shard_owners"))}
            placed: dict[str, int] = {
                r[0]: r[1] for r in conn.execute(text("SELECT execution_id, shard FROM executions"))
            }
    finally:
        database.dispose()
    assert owners == {shard: "a" if shard < 8 else "b" for shard in range(DEFAULT_SHARDS)}
    for parent in parents:  # a child is placed with its parent, whatever its own id would say
        children = [x for x in placed if x.startswith(f"{parent}:child")]
        assert children and all(placed[child] == placed[parent] for child in children)


def _dev(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cerebelum_operator.cli", "dev", "--ui-address", "off", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_an_engine_refuses_a_split_on_sqlite_a_bad_range_or_shards_the_store_lacks(
    tmp_path: Path, postgres_database_url: str
) -> None:
    on_sqlite = _dev("--db", f"sqlite:///{tmp_path / 'x.db'}", "--shards", "0-7")
    assert on_sqlite.returncode != 0 and "scale-out needs a postgresql:// store" in on_sqlite.stderr
    backwards = _dev("--db", postgres_database_url, "--shards", "7-3")
    assert backwards.returncode != 0 and "'7-3' is not a range of shards" in backwards.stderr
    long_name = _dev("--db", postgres_database_url, "--shards", "0-7", "--replica", "r" * 5000)
    assert long_name.returncode != 0 and "a replica name is 1 to 40 letters" in long_name.stderr
    long_address = _dev(
        "--db", postgres_database_url, "--shards", "auto", "--replica", "a", "--advertise-address", "h" * 300
    )
    assert long_address.returncode != 0 and "advertised address is 1 to 255 characters, not 300" in long_address.stderr
    too_far = _dev("--db", postgres_database_url, "--shards", "8-20", "--address", "127.0.0.1:0")
    assert too_far.returncode != 0 and "this store has 16 shards (0 to 15), so it has no shard 20" in too_far.stderr


NAP: dict[str, Any] = {
    "taskQueue": "test",
    "timeline": ["nap", "compose_greeting"],
    "steps": {
        "nap": {"timer": {"duration": "1500ms"}},
        "compose_greeting": {"args": {"greeting": "'Hello'", "name": "input.name"}},
    },
    "output": "steps.compose_greeting.text",
}


def test_a_killed_replica_stops_only_its_own_shards_and_finishes_them_when_it_comes_back(
    replicas: tuple[EngineProcess, EngineProcess],
) -> None:
    a, b = replicas
    with Client(address=a.address) as via_a:
        via_a.apply_workflow("nap", NAP)
        mine, theirs = _ids(0, 6, "n"), _ids(1, 6, "n")
        for execution_id in mine + theirs:
            via_a.start("nap", {"name": execution_id}, execution_id=execution_id)
        b.kill()  # while its executions sleep, their timers durable in the store
        for execution_id in mine:  # a's half goes on as if nothing happened
            assert via_a.wait(execution_id, timeout=120).output == f"Hello, {execution_id}!"
        b.start()  # the same shards again: it takes them (a new epoch), loads its tasks and timers
        for execution_id in theirs:
            assert via_a.wait(execution_id, timeout=120).output == f"Hello, {execution_id}!"


def test_schedules_live_with_shard_0s_owner_whichever_engine_is_asked(
    replicas: tuple[EngineProcess, EngineProcess],
) -> None:
    a, b = replicas
    with Client(address=b.address) as via_b:
        via_b.apply_workflow("nap", NAP)
        created = _cli(
            b, "schedule", "create", "nightly", "--workflow", "nap", "--cron", "@daily", "--input", '{"name": "s"}'
        )
        assert created.returncode == 0, created.stderr
        assert "nightly" in _cli(a, "schedule", "list", "-o", "json").stdout  # one schedule, whichever engine asked
        fired = _cli(b, "schedule", "trigger", "nightly")
        assert fired.returncode == 0, fired.stderr
        execution_id = fired.stdout.strip().split()[0].removeprefix("execution/")
        assert via_b.wait(execution_id, timeout=120).output == "Hello, s!"


def test_a_concurrency_limit_holds_across_both_engines_and_every_execution_runs(
    replicas: tuple[EngineProcess, EngineProcess],
) -> None:
    a, _ = replicas
    limited = {**NAP, "flowControl": {"key": "'everyone'", "concurrency": 2}}
    ids = _in_both_halves(3, "cc-")
    with Client(address=a.address) as via_a:
        via_a.apply_workflow("limited", limited)
        _start_each(via_a, "limited", ids)
        assert [via_a.wait(execution_id, timeout=120).output for execution_id in ids] == [
            f"Hello, {execution_id}!" for execution_id in ids
        ]
        spans = []
        for execution_id in ids:
            events = via_a.history(execution_id)
            admitted = next(e.at for e in events if e.type == "ExecutionResumed")
            ended = next(e.at for e in events if e.type == "ExecutionSucceeded")
            assert admitted is not None and ended is not None
            spans.append((admitted.timestamp(), ended.timestamp()))
    # Each engine alone would have run 2 of its own 3 at once: 4 together. The store counts both.
    most = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert most <= 2, spans
    assert most == 2, "two ran at once: the limit, not one engine at a time"


def test_a_task_queue_paused_through_one_engine_holds_on_both_and_resumes_through_the_other(
    replicas: tuple[EngineProcess, EngineProcess],
) -> None:
    a, b = replicas
    paused = _cli(a, "queue", "pause", "test", "--note", "deploy")
    assert paused.returncode == 0, paused.stderr
    # The engine called told the other at once: its dispatcher holds the queue now.
    (seen,) = json.loads(_cli(b, "queue", "list", "-o", "json").stdout)
    assert (seen["name"], seen["paused"], seen["note"]) == ("test", True, "deploy")

    ids = _in_both_halves(1, "held-")
    with Client(address=a.address) as via_a:
        via_a.apply_workflow("greet", GREET)
        _start_each(via_a, "greet", ids)

        def both_held_seen_from_each() -> bool:
            # Each engine holds its own half's task; the one called adds up the other's (`queue_totals`).
            return all(
                json.loads(_cli(engine, "queue", "list", "-o", "json").stdout)[0]["ready"] == 2 for engine in (a, b)
            )

        wait_until(both_held_seen_from_each, within=60, what="each engine's list counting both halves' held tasks")
        assert not any(e.type == "StepStarted" for i in ids for e in via_a.history(i))

        resumed = _cli(b, "queue", "resume", "test")
        assert resumed.returncode == 0, resumed.stderr
        wait_until(
            lambda: all(any(e.type == "StepCompleted" for e in via_a.history(i)) for i in ids),
            within=60,
            what="both executions' first steps to run once the queue is resumed through the other engine",
        )
    b.kill()  # its shards stay recorded as its own until it comes back: their tasks cannot be counted
    listed = _cli(a, "queue", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert "not counted" in listed.stderr and b.address in listed.stderr, listed.stderr
    assert [queue["name"] for queue in json.loads(listed.stdout)] == ["test"]


GREETING: dict[str, Any] = {
    "taskQueue": "test",
    "timeline": ["compose_greeting"],
    "steps": {"compose_greeting": {"args": {"greeting": "'Hello'", "name": "input.name"}}},
    "output": "steps.compose_greeting.text",
}


@pytest.mark.parametrize("limit", ["queue", "workflow"])
def test_a_rate_limit_set_through_one_engine_counts_the_starts_of_both(
    replicas: tuple[EngineProcess, EngineProcess], limit: str
) -> None:
    """A task queue's (`cerebelum queue limit`) or a workflow's flow key's (`flowControl.rateLimit`)."""
    a, b = replicas
    spec = GREETING
    if limit == "queue":
        limited = _cli(b, "queue", "limit", "test", "2/3s")
        assert limited.returncode == 0, limited.stderr
    else:
        spec = {**GREETING, "flowControl": {"key": "'everyone'", "rateLimit": {"tasks": 2, "per": "3s"}}}
    ids = _in_both_halves(3, f"rl-{limit}-")
    with Client(address=a.address) as via_a:
        via_a.apply_workflow("greeting", spec)
        _start_each(via_a, "greeting", ids)
        assert [via_a.wait(execution_id, timeout=120).output for execution_id in ids] == [
            f"Hello, {execution_id}!" for execution_id in ids
        ]
        starts = sorted(
            event.at.timestamp()
            for execution_id in ids
            for event in via_a.history(execution_id)
            if event.type == "StepStarted" and event.at is not None
        )
    # Each engine alone would have let 2 of its own start in any 3 s: 4 together. The store counts both.
    assert len(starts) == len(ids)
    assert all(later - earlier >= 3.0 for earlier, later in zip(starts, starts[2:], strict=False)), starts


def test_a_workflow_paused_through_one_engine_holds_its_new_executions_on_both_and_each_resumes_its_own(
    replicas: tuple[EngineProcess, EngineProcess],
) -> None:
    a, b = replicas
    ids = _in_both_halves(1, "wp-")
    with Client(address=a.address) as via_a, Client(address=b.address) as via_b:
        via_a.apply_workflow("nap", NAP)
        via_b.pause_workflow("nap", reason="a bad release")
        _start_each(via_a, "nap", ids)  # each starts on its owner, which was told of the pause
        assert [via_a.get(execution_id).phase for execution_id in ids] == ["Paused", "Paused"]

        via_a.resume_workflow("nap")  # a resumes its own; b, told, resumes its own
        assert [via_a.wait(execution_id, timeout=120).output for execution_id in ids] == [
            f"Hello, {execution_id}!" for execution_id in ids
        ]


def test_a_bulk_action_through_one_engine_is_done_by_each_execution_s_owner(
    replicas: tuple[EngineProcess, EngineProcess],
) -> None:
    a, b = replicas
    ids = _in_both_halves(2, "bulk-")
    with Client(address=a.address) as via_a, Client(address=b.address) as via_b:
        via_a.apply_workflow("greet", GREET)  # each waits for a signal that never comes
        _start_each(via_a, "greet", ids)
        wait_until(
            lambda: all(any(e.type == "SignalWaitStarted" for e in via_a.history(i)) for i in ids),
            within=60,
            what="every execution waiting for its signal",
        )

        preview = via_b.bulk("cancel", workflow="greet", dry_run=True)
        assert sorted(o.id for o in preview.outcomes) == sorted(ids)
        assert {o.result for o in preview.outcomes} == {"unchanged"}

        done = via_b.bulk("cancel", workflow="greet", reason="tidying up")
        assert sorted((o.id, o.result, o.error) for o in done.outcomes) == sorted((i, "done", None) for i in ids), (
            done.outcomes
        )
        assert [o.id for o in done.outcomes] == [o.id for o in preview.outcomes], "in the selection's order"
        assert {via_a.get(i).phase for i in ids} == {"Cancelled"}


def _cli(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cerebelum_operator.cli", *args, "--address", engine.address]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _owners(url: str) -> dict[int, str | None]:
    database = create_engine(normalise_url(url))
    try:
        with database.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(text("SELECT shard, owner FROM shard_owners"))}
    finally:
        database.dispose()


def _balanced(owners: dict[int, str | None], names: set[str]) -> bool:
    counts = [sum(1 for owner in owners.values() if owner == name) for name in names]
    return set(owners.values()) == names and max(counts) - min(counts) <= 1


def test_engines_with_auto_shards_share_them_and_take_a_killed_ones_over(
    postgres_database_url: str, tmp_path: Path
) -> None:
    names = ("a", "b", "c")
    engines = _engines(postgres_database_url, tmp_path, tuple((name, "auto") for name in names))
    pools: list[WorkerPool] = []
    try:
        for engine in engines:
            engine.start()
        for engine, name in zip(engines, names, strict=True):
            (tmp_path / name).mkdir()
            pool = WorkerPool(
                script=WORKER, address=engine.address, ledger=tmp_path / "ledger.jsonl", log_dir=tmp_path / name
            )
            pool.start()
            pools.append(pool)
        wait_until(
            lambda: _balanced(_owners(postgres_database_url), set(names)),
            within=60,
            what="three engines to share the shards",
        )

        with Client(address=engines[0].address) as via_a:
            via_a.apply_workflow("nap", NAP)
            owners = _owners(postgres_database_url)
            ids = [f"auto{n}" for n in range(24)]
            for execution_id in ids:
                via_a.start("nap", {"name": execution_id}, execution_id=execution_id)
            engines[2].kill()  # c dies with its executions asleep: a and b take its shards over
            wait_until(
                lambda: _balanced(_owners(postgres_database_url), {"a", "b"}),
                within=60,
                what="a and b to take c's shards",
            )
            orphaned = [x for x in ids if owners[shard_of(x, shards=DEFAULT_SHARDS)] == "c"]
            assert orphaned  # 24 ids over 16 shards: some were c's
            for execution_id in ids:
                assert via_a.wait(execution_id, timeout=120).output == f"Hello, {execution_id}!"

            engines[2].start()  # c comes back: the others hand it its share again
            wait_until(
                lambda: _balanced(_owners(postgres_database_url), set(names)),
                within=60,
                what="c to get its share back",
            )
            again = [f"back{n}" for n in range(12)]
            for execution_id in again:
                via_a.start("nap", {"name": execution_id}, execution_id=execution_id)
            for execution_id in again:
                assert via_a.wait(execution_id, timeout=120).output == f"Hello, {execution_id}!"
    finally:
        for pool in pools:
            pool.stop_all()
        for engine in engines:
            engine.stop()


RAW: dict[str, Any] = {"taskQueue": "raw", "timeline": ["noop"], "steps": {"noop": {}}, "output": "steps.noop"}


def test_a_batch_of_reports_spanning_both_engines_is_answered_by_each_owner(
    replicas: tuple[EngineProcess, EngineProcess],
) -> None:
    import grpc

    from cerebelum.v1 import worker_pb2, worker_pb2_grpc

    a, b = replicas
    with Client(address=a.address) as via_a:
        via_a.apply_workflow("raw", RAW)
        (on_a,), (on_b, also_b) = _ids(0, 1, "r"), _ids(1, 2, "r")
        for execution_id in (on_a, on_b, also_b):
            via_a.start("raw", None, execution_id=execution_id)
        channels = {engine.address: grpc.insecure_channel(engine.address) for engine in (a, b)}
        try:
            stubs: dict[str, Any] = {
                address: worker_pb2_grpc.WorkerServiceStub(channel)  # type: ignore[no-untyped-call]  # generated
                for address, channel in channels.items()
            }

            def take(engine: EngineProcess) -> worker_pb2.Task:
                request = worker_pb2.PollTaskRequest(worker_id="w-raw", task_queue="raw", steps=["noop"], wait_ms=5000)
                reply = stubs[engine.address].PollTask(request, timeout=30)
                assert reply.HasField("task")
                task: worker_pb2.Task = reply.task
                return task

            def report(task: worker_pb2.Task) -> worker_pb2.CompleteTaskRequest:
                success = worker_pb2.Success(output_json=f'"{task.execution_id}"')
                return worker_pb2.CompleteTaskRequest(task_token=task.task_token, worker_id="w-raw", success=success)

            tasks = {task.execution_id: task for task in (take(a), take(b), take(b))}
            assert tasks.keys() == {on_a, on_b, also_b}
            mixed = stubs[a.address].CompleteTasks(
                worker_pb2.CompleteTasksRequest(reports=[report(tasks[on_a]), report(tasks[on_b])]), timeout=30
            )  # a answers its own, sends b's on to b
            assert [r.WhichOneof("result") for r in mixed.results] == ["reply", "reply"]
            theirs = stubs[a.address].CompleteTasks(
                worker_pb2.CompleteTasksRequest(reports=[report(tasks[also_b])]), timeout=30
            )  # all b's: sent on whole
            assert [r.WhichOneof("result") for r in theirs.results] == ["reply"]
        finally:
            for channel in channels.values():
                channel.close()
        for execution_id in (on_a, on_b, also_b):
            assert via_a.wait(execution_id, timeout=60).output == execution_id


def test_one_worker_given_both_engines_serves_both_halves(postgres_database_url: str, tmp_path: Path) -> None:
    engines = _engines(postgres_database_url, tmp_path, (("a", "0-7"), ("b", "8-15")))
    pool = WorkerPool(
        script=WORKER,
        address=",".join(engine.address for engine in engines),  # CEREBELUM_ADDRESS="a,b": a poller group each
        ledger=tmp_path / "ledger.jsonl",
        log_dir=tmp_path,
    )
    try:
        for engine in engines:
            engine.start()
        worker = pool.start()
        with Client(address=engines[1].address) as via_b:
            via_b.apply_workflow("nap", NAP)
            ids = _ids(0, 3, "one") + _ids(1, 3, "one")
            for execution_id in ids:
                via_b.start("nap", {"name": execution_id}, execution_id=execution_id)
            for execution_id in ids:
                assert via_b.wait(execution_id, timeout=120).output == f"Hello, {execution_id}!"
            assert worker.process is not None
            assert {_worker_pid_of(via_b, execution_id) for execution_id in ids} == {worker.process.pid}
    finally:
        pool.stop_all()
        for engine in engines:
            engine.stop()


WAIT_ONLY: dict[str, Any] = {
    "timeline": ["wait"],
    "steps": {"wait": {"signal": {"name": "go", "timeout": "1h"}}},
    "output": "steps.wait",
}


def test_replicas_serving_tls_forward_to_each_other_over_tls(postgres_database_url: str, tmp_path: Path) -> None:
    """Every call below goes through a: those about b's half are forwarded to b over TLS (checked
    against the CA and the name the replicas' certificate carries, not the address)."""
    certificate, key = self_signed_certificate(tmp_path)
    tls = ("--tls-cert", str(certificate), "--tls-key", str(key), "--token", TOKEN)
    peer = ("--peer-tls-ca", str(certificate), "--peer-tls-server-name", "localhost")
    engines = [
        GuardedEngine(
            database_url=postgres_database_url,
            log_path=tmp_path / f"engine-{name}.log",
            extra_args=("--shards", share, "--replica", name, *tls, *peer),
        )
        for name, share in (("a", "0-7"), ("b", "8-15"))
    ]
    for engine in engines:
        engine.start()
    try:
        a = engines[0]
        settings = TlsSettings(ca_file=str(certificate), server_name="localhost")
        with Client(address=a.address, token=TOKEN, tls=settings) as via_a:
            via_a.apply_workflow("wait", WAIT_ONLY)
            ids = _ids(0, 2, "t") + _ids(1, 2, "t")
            for execution_id in ids:
                via_a.start("wait", {}, execution_id=execution_id)
            for execution_id in ids:
                via_a.signal(execution_id, "go", {"to": execution_id})
            for execution_id in ids:
                done = via_a.wait(execution_id, timeout=60)
                assert (done.phase, done.output["data"]) == ("Succeeded", {"to": execution_id})
        owners = _owners(postgres_database_url)
        assert owners == {shard: "a" if shard < 8 else "b" for shard in range(DEFAULT_SHARDS)}
    finally:
        for engine in engines:
            engine.stop()


def test_replicas_serving_tls_are_refused_without_the_ca_to_verify_each_other(
    postgres_database_url: str, tmp_path: Path
) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    plain = _dev(
        *("--db", postgres_database_url, "--shards", "0-7", "--address", "127.0.0.1:0"),
        *("--tls-cert", str(certificate), "--tls-key", str(key), "--token", TOKEN),
    )
    assert plain.returncode != 0
    assert "give --peer-tls-ca" in plain.stderr, plain.stderr
    stray = _dev("--db", postgres_database_url, "--peer-tls-ca", str(certificate), "--address", "127.0.0.1:0")
    assert stray.returncode != 0
    assert "--peer-tls-ca needs --tls-cert" in stray.stderr, stray.stderr
