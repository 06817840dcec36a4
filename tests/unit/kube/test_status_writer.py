"""The status writer: coalesced, diffed, rate-limited writes of Execution status, with a fake engine and API.

Time is a `FakeClock`: intervals and the token bucket pass only when a test advances it, and a test
waits for what it expects (a write, the writer idle), never for a length of real time.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from cerebelum_operator.engine import ExecutionState
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.events import RecordedEvent
from cerebelum_operator.kube.client import ObjectRef
from cerebelum_operator.kube.echoes import OwnEchoes
from cerebelum_operator.kube.projection import ProjectionLimits, project_execution, recent_event
from cerebelum_operator.kube.rate_limit import TokenBucket
from cerebelum_operator.kube.status_writer import StatusWriter
from cerebelum_operator.runtime import ExecutionNotFound, FakeClock
from cerebelum_operator.runtime.engine_service import LiveStep
from tests.support.waiting import advance_until, eventually

from ..engine.simulator import Simulator

NOW_MS = 1_700_000_000_000
LIMITS = ProjectionLimits()


def api_error(code: int) -> ApiError:
    return ApiError(status=Status(code=code, message=f"HTTP {code}", reason="Testing"))


# -- fakes ---------------------------------------------------------------------------------


class FakeEngine:
    """Holds each execution's state and history as a Simulator left them; tells listeners of every commit."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[str, ExecutionState], None]] = []
        self.progress_listeners: list[Callable[[str], None]] = []
        self.progress: dict[str, dict[str, LiveStep]] = {}
        self.states: dict[str, ExecutionState] = {}
        self.histories: dict[str, list[RecordedEvent]] = {}
        self.reads: list[str] = []
        self.history_listeners: list[Callable[[str, list[RecordedEvent]], None]] = []
        self.history_reads: list[str] = []

    def add_history_listener(self, listener: Callable[[str, list[RecordedEvent]], None]) -> None:
        self.history_listeners.append(listener)

    def add_change_listener(self, listener: Callable[[str, ExecutionState], None]) -> None:
        self.listeners.append(listener)

    def add_progress_listener(self, listener: Callable[[str], None]) -> None:
        self.progress_listeners.append(listener)

    def live_steps(self, state: ExecutionState) -> dict[str, LiveStep]:
        return dict(self.progress.get(state.execution_id, {}))

    def heartbeat(self, execution_id: str, step: str, progress: Any) -> None:
        """A running step reports progress: no decision, only the progress listeners hear of it."""
        self.progress.setdefault(execution_id, {})[step] = LiveStep(progress=progress)
        for listener in self.progress_listeners:
            listener(execution_id)

    async def state_of(self, execution_id: str) -> ExecutionState:
        self.reads.append(execution_id)
        state = self.states.get(execution_id)
        if state is None:
            raise ExecutionNotFound(execution_id)
        return state

    async def load_history(
        self, execution_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        self.history_reads.append(execution_id)
        records = [r for r in self.histories[execution_id] if r.seq > after_seq]
        return records[:limit] if limit is not None else records

    def commit(self, execution_id: str, state: ExecutionState, history: list[RecordedEvent]) -> None:
        """Like the engine: the decision's new events to the history listeners, then its state to the others."""
        known = self.histories.get(execution_id, [])
        last = known[-1].seq if known else 0
        self.states[execution_id] = state
        self.histories[execution_id] = history
        new = [r for r in history if r.seq > last]
        for history_listener in self.history_listeners:
            history_listener(execution_id, new)
        for listener in self.listeners:
            listener(execution_id, state)

    def commit_sim(self, execution_id: str, sim: Simulator) -> None:
        self.commit(execution_id, sim.state.clone(), list(sim.history))


@dataclass
class FakeKubeApi:
    clock: FakeClock
    patches: list[tuple[ObjectRef, dict[str, Any], float]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    failures: list[Exception] = field(default_factory=list)

    async def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> str | None:
        """Like the API server: the resourceVersion the write left the object at (here, the write's number)."""
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.patches.append((ref, copy.deepcopy(status), self.clock.now_s()))
        return str(len(self.patches))

    async def post_event(self, ref: ObjectRef, *, type_: str, reason: str, note: str, action: str) -> None:
        self.events.append({"ref": ref, "type": type_, "reason": reason, "note": note, "action": action})

    def patches_of(self, ref: ObjectRef) -> list[dict[str, Any]]:
        return [status for r, status, _ in self.patches if r is ref]

    def merged(self, ref: ObjectRef) -> dict[str, Any]:
        """What merge patches of every write leave in the object's status (a null removes a field)."""
        result: dict[str, Any] = {}
        for status in self.patches_of(ref):
            result.update(status)
        return without_nulls(result)


def without_nulls(status: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in status.items() if value is not None}


def stored(value: Any) -> Any:
    """A value as the API server keeps it: null fields dropped at every level."""
    if isinstance(value, dict):
        return {key: stored(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [stored(item) for item in value]
    return value


def ref_for(name: str) -> ObjectRef:
    return ObjectRef(kind="Execution", namespace="default", name=name, uid=f"uid-{name}")


def expected_status(engine: FakeEngine, execution_id: str, *, generation: int | None = 1) -> dict[str, Any]:
    state = engine.states[execution_id]
    return project_execution(
        state,
        recent=[recent_event(r) for r in engine.histories[execution_id]],
        previous_conditions=[],
        generation=generation,
        now_ms=NOW_MS,
        limits=LIMITS,
    )


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=NOW_MS)


@pytest.fixture
def api(clock: FakeClock) -> FakeKubeApi:
    return FakeKubeApi(clock)


WriterFactory = Callable[..., Awaitable[StatusWriter]]


@pytest.fixture
async def make_writer(engine: FakeEngine, api: FakeKubeApi, clock: FakeClock) -> AsyncIterator[WriterFactory]:
    writers: list[StatusWriter] = []

    async def make(**options: Any) -> StatusWriter:
        writer = StatusWriter(engine, api, clock=clock, **options)  # type: ignore[arg-type]
        await writer.start()
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        await writer.stop()


def started(spec: dict[str, Any]) -> Simulator:
    return Simulator.start(spec)


def snapshots(sim: Simulator, steps: list[str]) -> Iterator[tuple[ExecutionState, list[RecordedEvent]]]:
    """One (state, history) per committed decision while each step starts and completes."""
    for step in steps:
        task = sim.task(step)
        sim.send(cmd.TaskStarted(task.token, "w1"))
        yield sim.state.clone(), list(sim.history)
        sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess({step: True})))
        yield sim.state.clone(), list(sim.history)


# -- coalescing and diffing ----------------------------------------------------------------


async def test_a_burst_of_changes_becomes_at_most_two_status_writes(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    names = [f"s{i:03d}" for i in range(101)]
    sim = started({"timeline": names})
    changes = list(snapshots(sim, names[:100]))
    assert len(changes) == 200
    engine.commit("ex1", *changes[0])
    writer = await make_writer(min_interval_s=1.0)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)

    for state, history in changes:
        engine.commit("ex1", state, history)
        await asyncio.sleep(0)

    final = changes[-1][0]
    await eventually(lambda: api.patches_of(ref), what="the first write")
    await advance_until(
        clock, lambda: api.merged(ref).get("eventCount") == final.last_seq, step=0.25, what="the final state written"
    )
    await eventually(lambda: writer.idle, what="the writer idle")
    assert 1 <= len(api.patches_of(ref)) <= 2
    assert api.merged(ref) == without_nulls(expected_status(engine, "ex1"))
    assert writer.tracked("ex1")


async def test_only_the_fields_that_changed_are_sent(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["a", "b", "c"]})
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=0.05)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the first write")
    before = expected_status(engine, "ex1")
    assert api.patches_of(ref)[0] == without_nulls(before)

    sim.send(cmd.TaskStarted(sim.task("a").token, "w1"))
    engine.commit_sim("ex1", sim)
    await clock.advance(0.05)
    await eventually(lambda: len(api.patches_of(ref)) == 2, what="the second write")
    second = api.patches_of(ref)[1]
    now = expected_status(engine, "ex1")
    assert set(second) == {key for key in now if stored(now[key]) != stored(before[key])}
    assert {"steps", "recentEvents", "eventCount"} <= set(second)
    assert not {"executionId", "startedAt", "conditions", "observedGeneration"} & set(second)
    assert api.merged(ref) == without_nulls(now)


async def test_an_object_that_already_shows_the_status_is_not_written_again(
    engine: FakeEngine, api: FakeKubeApi, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["a"]})
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=0.05)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=expected_status(engine, "ex1"), generation=1)
    await eventually(lambda: "ex1" in engine.reads, what="the state read")
    await eventually(lambda: writer.idle, what="the writer idle")
    assert api.patches == []
    assert writer.tracked("ex1")


async def test_an_untracked_execution_is_never_written(
    engine: FakeEngine, api: FakeKubeApi, make_writer: WriterFactory
) -> None:
    tracked_sim, other_sim = started({"timeline": ["a"]}), started({"timeline": ["a", "b"]})
    engine.commit_sim("tracked", tracked_sim)
    writer = await make_writer(min_interval_s=0.05)
    tracked_ref = ref_for("tracked")
    writer.track("tracked", tracked_ref, status=None, generation=1)
    for _ in range(20):
        engine.commit_sim("other", other_sim)
        await asyncio.sleep(0)
    await eventually(lambda: len(api.patches) == 1, what="the tracked execution's write")
    await eventually(lambda: writer.idle, what="the writer idle")
    assert [ref for ref, _, _ in api.patches] == [tracked_ref]
    assert "other" not in engine.reads
    assert not writer.tracked("other")


async def test_an_execution_gone_from_the_engine_is_forgotten_without_a_write(
    engine: FakeEngine, api: FakeKubeApi, make_writer: WriterFactory
) -> None:
    writer = await make_writer(min_interval_s=0.05)
    writer.track("missing", ref_for("missing"), status=None, generation=1)
    await eventually(lambda: not writer.tracked("missing"), what="forgetting the execution")
    assert engine.reads == ["missing"]
    assert api.attempts == 0


# -- phases and Events ---------------------------------------------------------------------


def _finish(sim: Simulator, phase: str) -> None:
    match phase:
        case "Succeeded":
            sim.run("a")
        case "Failed":
            sim.run("a", cmd.OutcomeFailure("Boom", "the disk is full", retryable=False))
        case "Cancelled":
            sim.send(cmd.Cancel("user asked"))
    assert sim.state.phase == phase


@pytest.mark.parametrize(
    ("phase", "type_", "note"),
    [
        ("Succeeded", None, None),  # a success shows in the status alone: no Event (two API writes saved)
        ("Failed", "Warning", "execution failed: step 'a' failed: Boom: the disk is full"),
        ("Cancelled", "Normal", "execution cancelled"),
    ],
)
async def test_a_terminal_phase_posts_its_event_once_and_forgets_the_execution(
    engine: FakeEngine,
    api: FakeKubeApi,
    clock: FakeClock,
    make_writer: WriterFactory,
    phase: str,
    type_: str,
    note: str,
) -> None:
    sim = started({"timeline": ["a"]})
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=0.05)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the first write")
    assert api.events == []

    _finish(sim, phase)
    engine.commit_sim("ex1", sim)
    await clock.advance(0.05)
    await eventually(lambda: not writer.tracked("ex1"), what="forgetting the finished execution")
    assert api.merged(ref)["phase"] == phase
    assert api.merged(ref)["finishedAt"] is not None
    assert len(api.events) == (0 if type_ is None else 1)
    if type_ is not None:
        event = api.events[0]
        assert event["ref"] is ref
        assert (event["type"], event["reason"], event["action"]) == (type_, phase, "Project")
        assert event["note"].startswith(note)
    posted = len(api.events)

    writes = len(api.patches)
    for _ in range(5):
        engine.commit_sim("ex1", sim)
        writer.on_change("ex1", sim.state)
    await clock.advance(1.0)
    await eventually(lambda: writer.idle, what="the writer idle")
    assert len(api.events) == posted
    assert len(api.patches) == writes


async def test_a_terminal_phase_the_object_already_shows_posts_no_second_event(
    engine: FakeEngine, api: FakeKubeApi, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["a"]})
    _finish(sim, "Succeeded")
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=0.05)
    writer.track("ex1", ref_for("ex1"), status={"phase": "Succeeded"}, generation=1)
    await eventually(lambda: not writer.tracked("ex1"), what="forgetting the finished execution")
    assert api.events == []
    assert len(api.patches) == 1 and "phase" not in api.patches[0][1]


async def test_waiting_for_an_approval_posts_an_event_naming_the_step(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["a", "go"], "steps": {"go": {"approval": {}}}})
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=0.05)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the first write")
    sim.run("a")
    engine.commit_sim("ex1", sim)
    await clock.advance(0.05)
    await eventually(lambda: len(api.events) == 1, what="the approval event")
    assert (api.events[0]["type"], api.events[0]["reason"]) == ("Normal", "WaitingForApproval")
    assert api.events[0]["note"] == "step go waits for an Approval"
    assert writer.tracked("ex1")


# -- API errors ----------------------------------------------------------------------------


async def test_a_deleted_object_makes_the_writer_forget_the_execution(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["a", "b"]})
    engine.commit_sim("ex1", sim)
    api.failures.append(api_error(404))
    writer = await make_writer(min_interval_s=0.05)
    writer.track("ex1", ref_for("ex1"), status=None, generation=1)
    await eventually(lambda: not writer.tracked("ex1"), what="forgetting the execution")
    sim.run("a")
    engine.commit_sim("ex1", sim)
    await clock.advance(1.0)
    await eventually(lambda: writer.idle, what="the writer idle")
    assert api.attempts == 1
    assert api.patches == []


@pytest.mark.parametrize(
    ("error", "delay"),
    [(api_error(500), 0.1), (api_error(409), 0.1), (api_error(429), 0.1), (RuntimeError("connection reset"), 1.0)],
    ids=["500", "409", "429", "not-an-api-error"],
)
async def test_any_other_write_error_is_retried_later(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory, error: Exception, delay: float
) -> None:
    sim = started({"timeline": ["a", "b"]})
    engine.commit_sim("ex1", sim)
    api.failures.append(error)
    writer = await make_writer(min_interval_s=0.1)
    ref = ref_for("ex1")
    failed_at = clock.now_s()
    writer.track("ex1", ref, status=None, generation=1)
    await eventually(lambda: api.attempts == 1, what="the failed write")
    await clock.wait_for_sleepers(1)  # the writer sleeps until the retry is due, it does not spin
    await clock.advance(delay * 0.9)
    assert api.attempts == 1, "retried before its delay"
    await clock.advance(delay * 0.1)
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the retried write")
    assert api.attempts == 2
    assert api.patches[0][2] - failed_at >= delay - 1e-6
    written, expected = api.patches_of(ref)[0], without_nulls(expected_status(engine, "ex1"))
    # The conditions carry the time of the write, which the retry moved on: compare the rest.
    assert {k: v for k, v in written.items() if k != "conditions"} == {
        k: v for k, v in expected.items() if k != "conditions"
    }
    assert writer.tracked("ex1")


# -- rate limits ---------------------------------------------------------------------------


async def test_writes_across_many_executions_share_one_token_bucket(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    rate, burst, count = 20.0, 5, 25
    for i in range(count):
        engine.commit_sim(f"ex{i}", started({"timeline": ["a"]}))
    begun = clock.now_s()
    writer = await make_writer(min_interval_s=0.05, writes_per_second=rate, burst=burst)
    for i in range(count):
        writer.track(f"ex{i}", ref_for(f"ex{i}"), status=None, generation=1)
    await eventually(lambda: len(api.patches) == burst, what="the burst written at once")
    await clock.wait_for_sleepers(1)  # the next write waits for a token
    assert len(api.patches) == burst
    await advance_until(clock, lambda: len(api.patches) == count, step=0.01, what="every execution written")
    for index, (_, _, at) in enumerate(api.patches):
        # The (index+1)th write needs index+1 tokens: the burst plus what the rate refilled by then.
        assert index + 1 <= burst + rate * (at - begun) + 1e-6
    assert api.patches[-1][2] - begun >= (count - burst) / rate - 1e-6


async def test_a_writer_given_the_operator_s_bucket_spends_from_it(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    shared = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert shared.try_take()  # another writer spent the only token
    engine.commit_sim("ex1", started({"timeline": ["a"]}))
    writer = await make_writer(min_interval_s=0.05, bucket=shared)
    writer.track("ex1", ref_for("ex1"), status=None, generation=1)
    await clock.wait_for_sleepers(1)  # waiting for a token of the shared bucket
    assert api.patches == []
    await advance_until(clock, lambda: api.patches, step=0.1, what="the write once a token came back")
    assert api.patches[0][2] - NOW_MS / 1000 >= 1.0 - 1e-6


async def test_new_heartbeat_progress_of_a_running_step_is_written_though_no_decision_changed_the_state(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["batch"]})
    sim.send(cmd.TaskStarted(sim.task("batch").token, "w1"))
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=1.0)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)
    await eventually(lambda: api.patches_of(ref), what="the first write")
    await eventually(lambda: writer.idle, what="the writer idle")
    (step,) = api.merged(ref)["steps"]
    assert step["phase"] == "Running" and step.get("progress") is None

    engine.heartbeat("ex1", "batch", {"done": 40, "of": 100})
    await advance_until(
        clock,
        lambda: api.merged(ref)["steps"][0].get("progress") == '{"done":40,"of":100}',
        step=0.25,
        what="the progress written",
    )


# -- what waits and what does not ----------------------------------------------------------


async def test_a_new_object_whose_execution_ends_within_the_interval_gets_one_status_write_its_last(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["a", "b"]})
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=1.0)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status={}, generation=1, just_created=True)
    await clock.wait_for_sleepers(1)  # the first write waits one interval
    assert api.attempts == 0

    await clock.advance(0.4)
    sim.run("a")
    engine.commit_sim("ex1", sim)
    await clock.advance(0.4)
    sim.run("b")
    engine.commit_sim("ex1", sim)

    await eventually(lambda: not writer.tracked("ex1"), what="the end written, still within the interval")
    assert clock.now_s() - NOW_MS / 1000 < 1.0
    await clock.advance(2.0)
    await eventually(lambda: writer.idle, what="the writer idle")
    assert len(api.patches_of(ref)) == 1 and api.patches_of(ref)[0]["phase"] == "Succeeded"


async def test_an_execution_s_end_is_written_at_once_not_an_interval_after_the_last_write(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["a", "b"]})
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=10.0)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the first write")

    sim.run("a")
    engine.commit_sim("ex1", sim)  # progress: waits for the interval
    await clock.wait_for_sleepers(1)
    assert len(api.patches_of(ref)) == 1
    sim.run("b")
    engine.commit_sim("ex1", sim)  # the end: does not wait

    await eventually(lambda: len(api.patches_of(ref)) == 2, what="the end written without the clock moving")
    assert api.merged(ref)["phase"] == "Succeeded"
    assert not writer.tracked("ex1")


async def test_progress_alone_waits_longer_with_more_objects_but_a_change_of_phase_does_not(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    sim = started({"timeline": ["a", "b", "go"], "steps": {"go": {"approval": {}}}})
    engine.commit_sim("ex1", sim)
    quiet = started({"timeline": ["a"]})
    writer = await make_writer(min_interval_s=0.1, progress_writes_per_second=1.0)
    ref = ref_for("ex1")
    for other in ("ex2", "ex3", "ex4"):
        engine.commit_sim(other, quiet)
        writer.track(other, ref_for(other), status=expected_status(engine, other), generation=1)
    writer.track("ex1", ref, status=None, generation=1)
    assert writer.progress_interval_s == 4.0  # 4 objects at 1 progress write a second
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the first write")
    written_at = clock.now_s()

    sim.run("a")
    engine.commit_sim("ex1", sim)  # the same phase (Running): progress alone
    await advance_until(clock, lambda: len(api.patches_of(ref)) == 2, step=0.1, what="the progress write")
    assert clock.now_s() - written_at >= 4.0 - 1e-6, "progress written before its interval"
    progress_at = clock.now_s()

    sim.run("b")
    engine.commit_sim("ex1", sim)  # now waiting for an Approval: a change of phase
    await advance_until(clock, lambda: len(api.patches_of(ref)) == 3, step=0.05, what="the phase written")
    assert api.merged(ref)["phase"] == "WaitingForApproval"
    assert clock.now_s() - progress_at < 1.0, "a change of phase waited for the progress interval"


# -- recent events from memory ---------------------------------------------------------------


def but_conditions(status: dict[str, Any]) -> dict[str, Any]:
    """The status without its conditions, whose times follow the clock the test advanced."""
    return {key: value for key, value in status.items() if key != "conditions"}


async def write_each_step(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, ref: ObjectRef, sim: Simulator, steps: list[str]
) -> None:
    """Run `steps` one decision at a time, waiting after each step's completion for its write."""
    for index, (state, history) in enumerate(snapshots(sim, steps)):
        engine.commit("ex1", state, history)
        if index % 2:  # the step's completion
            written = functools.partial(lambda seq: api.merged(ref).get("eventCount") == seq, state.last_seq)
            await advance_until(clock, written, step=0.05, what="the step's write")


async def test_the_recent_events_of_a_followed_execution_come_from_memory_not_from_the_store(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    """Tracked after its start (a resume): its first write reads the history's tail, no later one does."""
    steps = ["a", "b", "c", "d", "e", "f"]
    sim = started({"timeline": steps})
    engine.commit_sim("ex1", sim)
    writer = await make_writer(min_interval_s=0.05)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the first write")
    assert engine.history_reads == ["ex1"]

    await write_each_step(engine, api, clock, ref, sim, steps)

    assert len(api.patches_of(ref)) >= 1 + len(steps)
    assert engine.history_reads == ["ex1"], "one read of the history's tail, for the first write only"
    assert (writer.recent_from_store, writer.recent_from_memory) == (1, len(api.patches_of(ref)) - 1)
    assert but_conditions(api.merged(ref)) == but_conditions(without_nulls(expected_status(engine, "ex1")))
    assert len(api.merged(ref)["recentEvents"]) == LIMITS.recent_events


async def test_an_execution_expected_before_its_start_never_has_its_history_read(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    writer = await make_writer(min_interval_s=0.05)
    writer.expect("ex1")  # what the reconciler does before it starts an Execution
    sim = started({"timeline": ["a", "b"]})
    engine.commit_sim("ex1", sim)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1, just_created=True)
    writer.unexpect("ex1")
    await write_each_step(engine, api, clock, ref, sim, ["a", "b"])
    await eventually(lambda: not writer.tracked("ex1"), what="the end written")

    assert engine.history_reads == []
    assert but_conditions(api.merged(ref)) == but_conditions(without_nulls(expected_status(engine, "ex1")))
    assert api.merged(ref)["phase"] == "Succeeded"


async def test_events_missed_by_the_writer_are_read_from_the_store_and_the_status_stays_right(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    steps = ["a", "b", "c"]
    sim = started({"timeline": steps})
    writer = await make_writer(min_interval_s=0.05)
    writer.expect("ex1")
    engine.commit_sim("ex1", sim)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)
    writer.unexpect("ex1")
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the first write")
    # A decision the writer does not hear of (its listener was not told): a gap in what it holds.
    task = sim.task("a")
    sim.send(cmd.TaskStarted(task.token, "w1"))
    sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess({"a": True})))
    engine.histories["ex1"] = list(sim.history)

    await write_each_step(engine, api, clock, ref, sim, steps[1:])

    assert engine.history_reads == ["ex1"], "read once, at the gap, then from memory again"
    assert but_conditions(api.merged(ref)) == but_conditions(without_nulls(expected_status(engine, "ex1")))


async def test_each_write_that_does_not_end_the_execution_awaits_its_echo_and_the_last_does_not(
    engine: FakeEngine, api: FakeKubeApi, clock: FakeClock, make_writer: WriterFactory
) -> None:
    """The watch's echo of a write is dropped before kopf (`kube/echoes.py`), except the end's: kopf
    must see the finished status to label the object and drop its finalizer."""
    echoes = OwnEchoes()
    writer = await make_writer(min_interval_s=0.05, echoes=echoes)
    sim = started({"timeline": ["a"]})
    engine.commit_sim("ex1", sim)
    ref = ref_for("ex1")
    writer.track("ex1", ref, status=None, generation=1)
    await eventually(lambda: len(api.patches_of(ref)) == 1, what="the first write")
    assert echoes.is_echo({"type": "MODIFIED", "object": {"metadata": {"uid": ref.uid, "resourceVersion": "1"}}})

    await write_each_step(engine, api, clock, ref, sim, ["a"])
    await eventually(lambda: not writer.tracked("ex1"), what="the end written")

    assert api.merged(ref)["phase"] == "Succeeded"
    assert len(echoes) == 0, "the end's write is not awaited as an echo"
