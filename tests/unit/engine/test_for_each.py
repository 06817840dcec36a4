"""forEach: one task per item of a run-time list, in the pure core (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase, Reply, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.ids import TaskToken
from cerebelum_operator.model import WorkflowInvalid, compile_workflow
from cerebelum_operator.model.limits import MAX_FOR_EACH_ITEMS

from .simulator import Simulator


def fan_spec(*, concurrency: int = 2, collect: bool = False, retry: int = 1, **step: Any) -> dict[str, Any]:
    return {
        "timeline": ["list", "fan", "after"],
        "steps": {
            "fan": {
                "function": "square",
                "forEach": {
                    "items": "steps.list.numbers",
                    "concurrency": concurrency,
                    "onItemFailure": "collect" if collect else "failFast",
                },
                "args": {"n": "item", "position": "index"},
                "retry": {"maxAttempts": retry, "initialInterval": "1s"},
                **step,
            }
        },
    }


def items_of(sim: Simulator) -> dict[int, TaskToken]:
    """The item tasks waiting now, by item."""
    found = {}
    for token in sim.tasks:
        parsed = TaskToken.parse(token)
        if parsed.item is not None:
            found[parsed.item] = parsed
    return found


def run_item(sim: Simulator, item: int, outcome: cmd.Outcome | None = None, *, worker: str = "w1") -> Reply:
    token = items_of(sim)[item].encode()
    task = sim.tasks[token]
    sim.now_ms = max(sim.now_ms, task.visible_at_ms)
    assert sim.send(cmd.TaskStarted(token, worker)) == Reply.ACCEPTED
    value = task.arguments["item"]
    return sim.send(cmd.TaskCompleted(token, outcome or cmd.OutcomeSuccess(value * value), worker_id=worker))


def started(numbers: list[Any], **options: Any) -> Simulator:
    sim = Simulator.start(fan_spec(**options))
    sim.run("list", cmd.OutcomeSuccess({"numbers": numbers}))
    return sim


def test_items_run_at_most_concurrency_at_a_time_and_the_result_keeps_item_order() -> None:
    sim = started([1, 2, 3, 4, 5], concurrency=2)
    assert sorted(items_of(sim)) == [0, 1]
    run_item(sim, 1)  # finishing out of order schedules the next unscheduled item
    assert sorted(items_of(sim)) == [0, 2]
    for item in (2, 0, 3, 4):
        run_item(sim, item)
    assert sim.state.results["fan"] == [1, 4, 9, 16, 25]
    assert sim.state.steps["fan"].phase == StepPhase.SUCCEEDED
    assert "after" in {TaskToken.parse(t).step for t in sim.tasks}
    assert sim.replayed() == sim.state


def test_each_item_task_carries_its_item_its_index_and_its_arguments_and_runs_the_function() -> None:
    sim = started(["a", "b"])
    task = sim.tasks[items_of(sim)[1].encode()]
    assert task.step == "square"
    assert task.arguments["item"] == "b" and task.arguments["index"] == 1
    assert task.arguments["args"] == {"n": "b", "position": 1}
    assert task.sticky_worker_id is None, "items spread over the workers"


def test_an_empty_list_completes_the_step_at_once_with_an_empty_result() -> None:
    sim = started([])
    assert sim.state.results["fan"] == []
    assert sim.task("after")


def test_one_event_per_item_outcome_and_no_event_for_an_items_lease() -> None:
    sim = started(list(range(10)), concurrency=3)
    before = len(sim.history)
    while items_of(sim):
        run_item(sim, min(items_of(sim)))
    kinds = sim.kinds()[before:]
    assert kinds.count("ItemCompleted") == 10
    assert "StepStarted" not in kinds and "StepScheduled" not in kinds[: kinds.index("StepCompleted")]
    assert len(sim.leases) >= 10


def test_a_failed_item_is_retried_by_the_steps_policy_with_a_new_token_then_succeeds() -> None:
    sim = started([3], retry=3)
    first = items_of(sim)[0]
    run_item(sim, 0, cmd.OutcomeFailure("Flaky", "try again", retryable=True))
    again = items_of(sim)[0]
    assert again.attempt == 2 and again.encode() != first.encode()
    assert sim.tasks[again.encode()].visible_at_ms > sim.now_ms, "after the backoff"
    run_item(sim, 0)
    assert sim.state.results["fan"] == [9]
    assert sim.replayed() == sim.state


def test_fail_fast_stops_the_other_items_and_fails_the_step_naming_the_item() -> None:
    sim = started([1, 2, 3, 4], concurrency=3)
    others = {items_of(sim)[1].encode(), items_of(sim)[2].encode()}
    run_item(sim, 0, cmd.OutcomeFailure("Broken", "no such file", retryable=False))
    assert others <= sim.cancelled
    assert sim.state.phase == ExecutionPhase.FAILED
    assert "item 0 of 4 failed after 1 attempt: no such file" in (sim.state.error or "")
    assert not sim.state.fan_outs
    assert sim.replayed() == sim.state


def test_collect_runs_every_item_and_puts_each_failures_error_in_its_place() -> None:
    sim = started([1, 2, 3], concurrency=1, collect=True)
    run_item(sim, 0)
    run_item(sim, 1, cmd.OutcomeFailure("Broken", "bad item", retryable=False))
    run_item(sim, 2)
    assert sim.state.results["fan"] == [1, {"error": {"type": "Broken", "message": "bad item"}}, 9]
    assert sim.state.steps["fan"].phase == StepPhase.SUCCEEDED


def test_a_diverge_rule_sees_the_collected_list_as_the_result() -> None:
    spec = fan_spec(collect=True)
    spec["branch"] = {"fan": [{"when": "result.exists(r, type(r) == map)", "then": "fail", "message": "some failed"}]}
    sim = Simulator.start(spec)
    sim.run("list", cmd.OutcomeSuccess({"numbers": [1, 2]}))
    run_item(sim, 0, cmd.OutcomeFailure("Broken", "x", retryable=False))
    run_item(sim, 1)
    assert sim.state.phase == ExecutionPhase.FAILED and "some failed" in (sim.state.error or "")


def test_a_completion_for_an_item_already_settled_is_a_duplicate_and_for_an_unknown_item_stale() -> None:
    sim = started([1, 2], concurrency=2)
    token = items_of(sim)[0].encode()
    run_item(sim, 0)
    assert sim.send(cmd.TaskCompleted(token, cmd.OutcomeSuccess(1), worker_id="w1")) == Reply.DUPLICATE
    forged = TaskToken("ex1", "fan", 1, 0, 999, 7).encode()
    assert sim.send(cmd.TaskCompleted(forged, cmd.OutcomeSuccess(1), worker_id="w1")) == Reply.STALE
    assert sim.state.results.get("fan") is None


def test_a_lease_that_expires_fails_the_items_attempt_and_retries_it() -> None:
    sim = started([5], retry=2)
    token = items_of(sim)[0].encode()
    sim.send(cmd.TaskStarted(token, "w1"))
    sim.send(cmd.TaskTimedOut(token, "lease"))
    assert items_of(sim)[0].attempt == 2
    assert sim.history[-1].event.kind == "ItemFailed"


def test_cancelling_the_execution_cancels_every_item_in_flight() -> None:
    sim = started([1, 2, 3], concurrency=3)
    tokens = {t.encode() for t in items_of(sim).values()}
    sim.send(cmd.Cancel("stop"))
    assert tokens <= sim.cancelled
    assert sim.state.phase == ExecutionPhase.CANCELLED


def test_a_list_over_the_item_limit_or_not_a_list_parks_the_step_in_the_dead_letter_queue() -> None:
    too_many = started(list(range(MAX_FOR_EACH_ITEMS + 1)))
    assert too_many.state.phase == ExecutionPhase.FAILED
    assert f"over the limit of {MAX_FOR_EACH_ITEMS:,}" in (too_many.state.error or "")
    assert too_many.dead_letters
    not_a_list = started({"a": 1})  # type: ignore[arg-type]
    assert "gave an object, not a list" in (not_a_list.state.error or "")


def test_a_diverge_retry_of_the_failed_step_runs_every_item_again_after_the_steps_backoff() -> None:
    spec = fan_spec(concurrency=2)
    spec["steps"]["fan"]["retry"] = {"maxAttempts": 2, "initialInterval": "10s", "jitter": 0}
    spec["diverge"] = {"fan": [{"match": {"error": {"type": "Broken"}}, "then": "retry"}]}
    sim = Simulator.start(spec)
    sim.run("list", cmd.OutcomeSuccess({"numbers": [1, 2]}))
    failed_at = sim.now_ms
    run_item(sim, 0, cmd.OutcomeFailure("Broken", "x", retryable=False))

    again = items_of(sim)
    assert sorted(again) == [0, 1] and sim.state.steps["fan"].attempt == 2
    assert all(sim.tasks[t.encode()].visible_at_ms == failed_at + 10_000 for t in again.values())
    assert sim.replayed() == sim.state


def test_a_redrive_runs_the_whole_fan_out_again_as_a_new_run() -> None:
    sim = started([1, 2], concurrency=2)
    run_item(sim, 0, cmd.OutcomeFailure("Broken", "x", retryable=False))
    (dead_letter,) = sim.dead_letters
    assert sim.send(cmd.Redrive(dead_letter)) == Reply.ACCEPTED
    assert sorted(items_of(sim)) == [0, 1]
    assert sim.state.steps["fan"].run == 2
    run_item(sim, 0)
    run_item(sim, 1)
    assert sim.state.results["fan"] == [1, 4]


def test_ten_thousand_items_stay_within_the_history_limit() -> None:
    sim = started(list(range(MAX_FOR_EACH_ITEMS)), concurrency=1000)
    while sim.state.fan_outs:
        live = sim.state.fan_outs["fan"].live  # what items_of finds, without scanning every task
        for item, task in list(live.items())[:50]:
            assert task.token in sim.tasks
            sim.send(cmd.TaskStarted(task.token, "w1"))
            sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeSuccess(item), worker_id="w1"))
    assert len(sim.state.results["fan"]) == MAX_FOR_EACH_ITEMS
    assert len(sim.history) < 10_100
    assert sim.state.phase == ExecutionPhase.RUNNING  # on to `after`


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"approval": {}}, "only a task can fan out"),
        ({"scheduleToStartTimeout": "1m"}, "scheduleToStartTimeout does not apply"),
    ],
)
def test_what_a_fan_out_cannot_honour_is_refused_at_apply(step: dict[str, Any], problem: str) -> None:
    spec = fan_spec(**step)
    with pytest.raises(WorkflowInvalid, match=problem):
        compile_workflow(spec)
