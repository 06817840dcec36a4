"""Code workflows in `decide`: workflow tasks, their commands checked and run as steps, failures retried."""

from __future__ import annotations

from typing import Any

from cerebelum_operator.engine import ExecutionPhase, Reply, StepPhase
from cerebelum_operator.engine import commands as cmd
from cerebelum_operator.engine.actions import ScheduleTask
from cerebelum_operator.engine.code_commands import MAX_COMMANDS_PER_TASK
from cerebelum_operator.engine.ids import WORKFLOW_TASK_STEP, TaskToken

from .simulator import Simulator

CODE = {"code": {"function": "provision", "taskQueue": "brains"}, "taskQueue": "hands"}


def workflow_task(sim: Simulator) -> ScheduleTask:
    return sim.task(WORKFLOW_TASK_STEP)


def answer(sim: Simulator, commands: Any, *, worker: str = "w1") -> Reply:
    """Lease the workflow task and answer it with ``commands``."""
    task = workflow_task(sim)
    sim.now_ms = max(sim.now_ms, task.visible_at_ms)
    assert sim.send(cmd.TaskStarted(task.token, worker)) == Reply.ACCEPTED
    return sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeWorkflowCommands(commands), worker_id=worker))


def fail_task(sim: Simulator, error_type: str = "NonDeterminism", *, worker: str = "w1") -> None:
    task = workflow_task(sim)
    sim.now_ms = max(sim.now_ms, task.visible_at_ms)
    sim.send(cmd.TaskStarted(task.token, worker))
    sim.send(
        cmd.TaskCompleted(task.token, cmd.OutcomeFailure(error_type, "event 7 (StepScheduled) vs command 2"), worker)
    )


def phase(sim: Simulator) -> ExecutionPhase:
    """Read afresh (a local the type checker does not narrow across the commands sent between)."""
    return sim.state.phase


def error_of(sim: Simulator) -> str | None:
    return sim.state.workflow_task_error


def step(id: int, function: str, **args: Any) -> dict[str, Any]:
    return {"type": "step", "id": id, "function": function, "args": args}


def test_a_start_schedules_one_workflow_task_for_the_registered_function_on_the_code_s_queue() -> None:
    sim = Simulator.start(CODE, {"region": "ams3"})

    task = workflow_task(sim)
    assert (task.step, task.task_queue) == ("workflow:provision", "brains")
    assert len(sim.tasks) == 1
    assert sim.kinds() == ["ExecutionStarted", "WorkflowTaskScheduled"]


def test_a_step_command_runs_with_its_arguments_and_its_result_wakes_the_code_which_completes() -> None:
    sim = Simulator.start(CODE, {"region": "ams3"})
    answer(sim, [step(1, "create_server", region="ams3")])

    server = sim.task("create_server#1")
    assert (server.step, server.task_queue) == ("create_server", "hands")
    assert server.arguments == {"input": None, "results": {}, "args": {"region": "ams3"}}
    assert WORKFLOW_TASK_STEP not in {TaskToken.parse(t).step for t in sim.tasks}, "the code waits: no task"

    sim.run("create_server#1", cmd.OutcomeSuccess({"id": 7}))
    answer(sim, [{"type": "complete", "output": {"ip": "10.0.0.7"}}])

    assert phase(sim) == ExecutionPhase.SUCCEEDED
    assert sim.state.output == {"ip": "10.0.0.7"}
    assert sim.replayed() == sim.state
    completed = [r.event for r in sim.history if r.event.kind == "WorkflowTaskCompleted"]
    assert completed[0].commands == [  # type: ignore[attr-defined]
        {"type": "step", "id": 1, "function": "create_server", "args": {"region": "ams3"}, "step": "create_server#1"}
    ]


def test_parallel_steps_each_wake_the_code_and_events_during_a_running_task_get_a_task_of_their_own() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [step(1, "configure", host="a"), step(2, "configure", host="b")])
    sim.run("configure#1")
    task = workflow_task(sim)
    sim.send(cmd.TaskStarted(task.token, "w1"))
    sim.run("configure#2")  # while the code runs for the first result

    sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeWorkflowCommands([]), worker_id="w1"))

    assert workflow_task(sim).token != task.token, "the second result is for the next task to show"
    answer(sim, [{"type": "complete", "output": None}])
    assert phase(sim) == ExecutionPhase.SUCCEEDED


def test_a_task_answered_with_nothing_new_to_see_schedules_no_other() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [{"type": "sleep", "id": 1, "duration": "5s"}])
    assert not sim.tasks
    sim.fire_timers()
    answer(sim, [])

    assert not sim.tasks, "nothing happened since: the code has nothing to see"
    assert sim.state.display_phase() == ExecutionPhase.RUNNING


def test_an_id_the_history_does_not_expect_fails_the_task_not_the_execution_and_a_fixed_answer_goes_on() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [step(1, "a")])
    sim.run("a#1")

    answer(sim, [step(1, "b")])  # command 1 again: a replay that disagrees with the history

    failed = sim.history[-2].event
    assert failed.kind == "WorkflowTaskFailed"
    assert failed.error_type == "InvalidCommands"  # type: ignore[attr-defined]
    assert "id 1 where the history expects 2" in failed.message  # type: ignore[attr-defined]
    assert phase(sim) == ExecutionPhase.RUNNING
    assert sim.state.workflow_task_error is not None and "InvalidCommands" in sim.state.workflow_task_error
    retry = workflow_task(sim)
    assert retry.visible_at_ms == sim.now_ms + 1000 and retry.sticky_worker_id is None

    answer(sim, [step(2, "b")])
    assert error_of(sim) is None
    assert "b#2" in sim.state.steps


def test_repeated_failures_back_off_doubling_and_the_execution_keeps_its_phase() -> None:
    sim = Simulator.start(CODE)
    delays = []
    for _ in range(4):
        fail_task(sim)
        delays.append(workflow_task(sim).visible_at_ms - sim.now_ms)

    assert delays == [1000, 2000, 4000, 8000]
    assert sim.state.display_phase() == ExecutionPhase.RUNNING
    assert sim.state.workflow_task_error == "NonDeterminism: event 7 (StepScheduled) vs command 2"
    assert sim.replayed() == sim.state


def test_a_worker_that_stops_answering_loses_the_task_to_another_at_once() -> None:
    sim = Simulator.start(CODE)
    task = workflow_task(sim)
    sim.send(cmd.TaskStarted(task.token, "w1"))

    assert sim.send(cmd.TaskTimedOut(task.token, "lease")) == Reply.ACCEPTED

    again = workflow_task(sim)
    assert again.token != task.token and again.visible_at_ms == sim.now_ms
    late = sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeWorkflowCommands([]), worker_id="w1"))
    assert late == Reply.STALE


def test_only_the_worker_holding_the_task_may_answer_it() -> None:
    sim = Simulator.start(CODE)
    task = workflow_task(sim)
    sim.send(cmd.TaskStarted(task.token, "w1"))

    reply = sim.send(cmd.TaskCompleted(task.token, cmd.OutcomeWorkflowCommands([step(1, "a")]), worker_id="w2"))

    assert reply == Reply.STALE
    assert "a#1" not in sim.state.steps


def test_a_step_that_fails_for_good_is_the_code_s_to_handle_not_the_end_of_the_execution() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [{**step(1, "flaky"), "options": {"retry": {"maxAttempts": 2, "initialInterval": "1ms"}}}])
    for _ in range(2):
        sim.run("flaky#1", cmd.OutcomeFailure("Boom", "no"))

    assert phase(sim) == ExecutionPhase.RUNNING
    assert sim.state.steps["flaky#1"].phase == StepPhase.FAILED
    assert not sim.dead_letters
    answer(sim, [{"type": "fail", "errorType": "StepFailedError", "message": "flaky gave up"}])
    assert phase(sim) == ExecutionPhase.FAILED
    assert sim.state.error == "StepFailedError: flaky gave up"


def test_an_approval_is_approved_by_its_name_and_a_second_of_that_name_gets_its_id() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [{"type": "approval", "id": 1, "name": "go_live", "timeout": "72h", "data": {"x": 1}}])
    assert sim.state.display_phase() == ExecutionPhase.WAITING_FOR_APPROVAL

    sim.send(cmd.Approve("go_live", "alice", {"ok": True}))
    answer(sim, [{"type": "approval", "id": 2, "name": "go_live"}])

    assert "go_live#2" in sim.state.approvals
    assert sim.state.results["go_live"]["approver"] == "alice"


def test_a_signal_of_any_name_is_queued_for_code_and_taken_by_its_wait() -> None:
    sim = Simulator.start(CODE)
    assert sim.send(cmd.Signal("poke", {"n": 1}, sender="bob")) == Reply.ACCEPTED
    answer(sim, [{"type": "waitSignal", "id": 1, "name": "poke"}])

    assert sim.state.results["signal.poke#1"]["data"] == {"n": 1}
    assert workflow_task(sim) is not None


def test_a_child_gets_the_input_the_code_gave_and_continue_as_new_the_next_run_s() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [{"type": "child", "id": 1, "workflow": "greeter", "input": {"name": "ada"}}])
    (start,) = sim.started_children()
    assert start.body["input"] == {"name": "ada"} and start.body["workflow"] == "greeter"

    sim.finish_children(output="hi ada")
    answer(sim, [{"type": "continueAsNew", "input": {"round": 2}}])

    assert phase(sim) == ExecutionPhase.CONTINUED_AS_NEW
    assert sim.messages[-1].body["input"] == {"round": 2}


def test_the_first_cancel_is_shown_to_the_code_and_a_second_one_stops_it_at_once() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [step(1, "long")])
    sim.send(cmd.Cancel("not needed"))

    assert phase(sim) == ExecutionPhase.RUNNING and "ExecutionCancelRequested" in sim.kinds()
    answer(sim, [step(2, "cleanup")])
    assert phase(sim) == ExecutionPhase.RUNNING, "the code cleans up first"

    sim.send(cmd.Cancel("now"))
    assert phase(sim) == ExecutionPhase.CANCELLED
    assert {TaskToken.parse(t).step for t in sim.cancelled} >= {"long#1", "cleanup#2"}


def test_code_that_ends_by_its_cancellation_cancels_the_execution_with_the_reason_asked() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [step(1, "long")])
    sim.send(cmd.Cancel("not needed"))
    answer(sim, [{"type": "cancelled", "message": "CancelledError"}])

    assert phase(sim) == ExecutionPhase.CANCELLED
    assert sim.state.error == "not needed"
    assert "long#1" in {TaskToken.parse(t).step for t in sim.cancelled}


def test_bad_commands_are_refused_whole_naming_the_command_and_the_problem() -> None:
    cases: list[tuple[Any, str]] = [
        ({"not": "a list"}, "JSON array"),
        ([{"type": "teleport", "id": 1}], "unknown command type 'teleport'"),
        ([{**step(1, "a"), "options": {"timeout": "3 parsecs"}}], "command 1 (step): options.timeout"),
        ([step(1, "bad name!")], "command 1 (step): function"),
        ([{"type": "complete", "output": 1}, step(1, "a")], "command 2: nothing may follow 'complete'"),
        ([step(n + 1, "a") for n in range(MAX_COMMANDS_PER_TASK + 1)], "over the limit of 1000"),
        ([{"type": "child", "id": 1, "workflow": "Not_A_Name"}], "is not a Workflow name"),
        # A child's Workflow is looked up in this execution's namespace: a path to another is no name.
        ([{"type": "child", "id": 1, "workflow": "team-b/payroll"}], "is not a Workflow name"),
        ([{"type": "approval", "id": 1, "name": "x" * 64}], "at most 63 characters"),
        ([{"type": "patch", "id": 1, "patch": "p" * 64}], "text of 1 to 63 characters"),
    ]
    for commands, expected in cases:
        sim = Simulator.start(CODE)
        answer(sim, commands)
        failed = sim.history[-2].event
        assert failed.kind == "WorkflowTaskFailed", commands
        assert expected in failed.message, (expected, failed.message)  # type: ignore[attr-defined]
        assert not any(TaskToken.parse(t).step != WORKFLOW_TASK_STEP for t in sim.tasks), "nothing recorded"


def test_the_workflow_timeout_fails_a_code_workflow_and_cancels_its_workflow_task() -> None:
    sim = Simulator.start({**CODE, "timeout": "1m"})
    task = workflow_task(sim)
    sim.fire_timers()

    assert phase(sim) == ExecutionPhase.FAILED
    assert "WorkflowTimeout" in (sim.state.error or "")
    assert task.token in sim.cancelled


def test_a_forced_cancel_stops_a_code_workflow_at_once() -> None:
    sim = Simulator.start(CODE)
    answer(sim, [step(1, "long")])

    sim.send(cmd.Cancel("its Execution object was deleted", force=True))

    assert phase(sim) == ExecutionPhase.CANCELLED
    assert "ExecutionCancelRequested" not in sim.kinds()
    assert "long#1" in {TaskToken.parse(t).step for t in sim.cancelled}
