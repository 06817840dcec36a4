"""The reconciler: what the operator does for each Workflow, Execution and Approval.

The world (a real engine and store, a fake API and writer) is in `world.py`.
"""

from __future__ import annotations

from typing import Any

import pytest

from cerebelum_operator.engine import ExecutionPhase
from cerebelum_operator.engine import events as ev
from cerebelum_operator.kube.names import InvalidName
from cerebelum_operator.kube.projection import condition
from cerebelum_operator.kube.reconciler import ObjectView, Outcome, Reconciler, Retry, workflow_key

from .world import (
    APPROVAL_AFTER_FIRST,
    NS,
    SIMPLE,
    TYPED_INPUT,
    UNKNOWN_GOTO,
    UNKNOWN_STEP,
    FakeBucket,
    World,
    add_execution,
    add_workflow,
    approval_body,
    body,
    complete_step,
    conditions_by_type,
    started_execution,
    waiting_for_approval,
    with_status,
)

# -- Workflow ------------------------------------------------------------------------------


async def test_a_valid_workflow_is_ready_compiled_with_its_step_count_and_stored_under_namespace_slash_name(
    world: World,
) -> None:
    workflow = body("pipeline", SIMPLE, generation=3)

    outcome = await world.reconciler.workflow_changed(ObjectView.of(workflow))

    ready = conditions_by_type(outcome.status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Compiled")

    add_workflow(world, "limited", LIMITED)
    execution = add_execution(world, "run-1", "limited", input={"customer": "acme"})
    await world.reconciler.execution_seen(ObjectView.of(execution), first_attempt=True)
    row = await world.execution_row(execution["metadata"]["uid"])
    assert row is not None and row.phase in ("Queued", "Running")  # started, waiting for its key's slot or in it
    assert ready["message"] == "2 steps compiled"
    assert ready["observedGeneration"] == 3
    assert outcome.status["steps"] == 2
    assert outcome.status["observedGeneration"] == 3
    assert outcome.event is None
    stored = await world.db.run(world.db.store.get_workflow, workflow_key(NS, "pipeline"))
    assert stored is not None
    assert stored.name == f"{NS}/pipeline"
    assert stored.spec == SIMPLE
    assert await world.db.run(world.db.store.get_workflow, "pipeline") is None


async def test_a_workflow_whose_generation_was_already_observed_gets_an_empty_outcome(world: World) -> None:
    workflow = body("pipeline", SIMPLE, generation=2)
    first = await world.reconciler.workflow_changed(ObjectView.of(workflow))
    assert first.status  # the first pass does write

    again = await world.reconciler.workflow_changed(ObjectView.of(with_status(workflow, first)))

    assert again == Outcome()
    assert again.status == {} and again.event is None


async def test_a_workflow_with_a_new_generation_is_compiled_again(world: World) -> None:
    workflow = body("pipeline", SIMPLE, generation=1)
    first = await world.reconciler.workflow_changed(ObjectView.of(workflow))
    changed = with_status(workflow, first)
    changed["metadata"]["generation"] = 2
    changed["spec"] = {"timeline": ["fetch", "store", "notify"]}

    outcome = await world.reconciler.workflow_changed(ObjectView.of(changed))

    assert outcome.status["observedGeneration"] == 2
    assert outcome.status["steps"] == 3
    stored = await world.db.run(world.db.store.get_workflow, workflow_key(NS, "pipeline"))
    assert stored is not None and stored.spec == {"timeline": ["fetch", "store", "notify"]}


async def test_a_workflow_ready_under_older_rules_turns_invalid_on_the_next_pass_naming_the_place(
    world: World,
) -> None:
    # Ready at generation 2 under a release that did not check CEL names; the operator resumes.
    spec = {"timeline": ["fetch", "store"], "branch": {"fetch": [{"when": "inptu.x", "goto": "store"}]}}
    ready = condition("Ready", "True", "Compiled", "2 steps compiled", now_ms=0, generation=2)
    workflow = body("pipeline", spec, generation=2, status={"conditions": [ready], "observedGeneration": 2})

    outcome = await world.reconciler.workflow_changed(ObjectView.of(workflow))

    marked = conditions_by_type(outcome.status)["Ready"]
    assert (marked["status"], marked["reason"]) == ("False", "Invalid")
    assert "branch.fetch[0].when: unknown name 'inptu'" in marked["message"]
    assert outcome.event is not None and outcome.event[:2] == ("Warning", "Invalid")
    again = await world.reconciler.workflow_changed(ObjectView.of(with_status(workflow, outcome)))
    assert again == Outcome()  # written once: the verdict did not change on the pass after


async def test_a_workflow_invalid_at_its_generation_that_now_compiles_turns_ready_and_is_stored(world: World) -> None:
    invalid = condition("Ready", "False", "Invalid", "older rules", now_ms=0, generation=5)
    workflow = body("pipeline", SIMPLE, generation=5, status={"conditions": [invalid], "observedGeneration": 5})

    outcome = await world.reconciler.workflow_changed(ObjectView.of(workflow))

    assert conditions_by_type(outcome.status)["Ready"]["status"] == "True"
    assert await world.db.run(world.db.store.get_workflow, workflow_key(NS, "pipeline")) is not None


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        pytest.param(UNKNOWN_STEP, "steps.ghost", id="steps-entry-for-an-unknown-step"),
        pytest.param(UNKNOWN_GOTO, "'nowhere'", id="branch-goto-to-an-unknown-step"),
    ],
)
async def test_an_invalid_workflow_is_not_ready_invalid_naming_the_problem_with_a_warning_event(
    world: World, spec: dict[str, Any], named: str
) -> None:
    outcome = await world.reconciler.workflow_changed(ObjectView.of(body("broken", spec, generation=4)))

    ready = conditions_by_type(outcome.status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Invalid")
    assert named in ready["message"]
    assert "unknown step" in ready["message"]
    assert outcome.status["observedGeneration"] == 4
    assert "steps" not in outcome.status
    assert outcome.event is not None
    type_, reason, note = outcome.event
    assert (type_, reason) == ("Warning", "Invalid")
    assert named in note
    assert await world.db.run(world.db.store.get_workflow, workflow_key(NS, "broken")) is None


# -- Execution: starting -------------------------------------------------------------------


async def test_execution_seen_starts_one_engine_execution_whose_id_is_the_uid_with_the_spec_input(
    world: World,
) -> None:
    add_workflow(world, "pipeline", SIMPLE)
    execution = add_execution(world, "run-1", "pipeline", input={"n": 7}, uid="0f0e-uid")

    outcome = await world.reconciler.execution_seen(ObjectView.of(execution), first_attempt=True)

    assert outcome.event is None  # the status shows the start: no Event (an API write saved)
    assert outcome.status == {}
    row = await world.execution_row("0f0e-uid")
    assert row is not None
    assert row.workflow == workflow_key(NS, "pipeline")
    assert row.input == {"n": 7}
    history = await world.history("0f0e-uid")
    started = [e for e in history if isinstance(e, ev.ExecutionStarted)]
    assert len(started) == 1
    assert started[0].input == {"n": 7}
    assert world.writer.refs["0f0e-uid"].name == "run-1"
    assert world.writer.refs["0f0e-uid"].kind == "Execution"
    assert world.api.patches == []


async def test_execution_seen_twice_and_again_on_a_later_attempt_still_starts_exactly_one_execution(
    world: World,
) -> None:
    add_workflow(world, "pipeline", SIMPLE)
    execution = ObjectView.of(add_execution(world, "run-1", "pipeline", input={"n": 1}))

    await world.reconciler.execution_seen(execution, first_attempt=True)
    second = await world.reconciler.execution_seen(execution, first_attempt=True)
    third = await world.reconciler.execution_seen(execution, first_attempt=False)

    assert second == Outcome() and third == Outcome()
    history = await world.history(execution.uid)
    assert sum(isinstance(e, ev.ExecutionStarted) for e in history) == 1
    assert sum(isinstance(e, ev.StepScheduled) for e in history) == 1
    executions = await world.db.run(world.db.store.list_executions)
    assert [e.execution_id for e in executions] == [execution.uid]
    assert world.writer.track_calls == [execution.uid] * 3
    assert list(world.writer.refs) == [execution.uid]


async def test_executions_of_a_workflow_the_watch_delivered_start_without_reading_it_from_the_api(
    world: World,
) -> None:
    """The spec comes from the Workflow watch (`kube/watched.py`): no GET of the Workflow per Execution."""
    world.reconciler.workflows.seen(NS, "pipeline", SIMPLE)  # the watch handler's doing
    executions = [ObjectView.of(add_execution(world, f"run-{i}", "pipeline", input={"n": i})) for i in range(5)]

    for execution in executions:
        await world.reconciler.execution_seen(execution, first_attempt=True)

    assert [get for get in world.api.gets if get[0] == "Workflow"] == []
    for execution in executions:
        row = await world.execution_row(execution.uid)
        assert row is not None and row.spec == SIMPLE
    assert world.writer.expected == set(), "each start's expectation is dropped once it is tracked"


async def test_a_workflow_the_watch_has_not_delivered_is_read_from_the_api_and_a_deleted_one_is_not_used(
    world: World,
) -> None:
    add_workflow(world, "pipeline", SIMPLE)
    first = ObjectView.of(add_execution(world, "run-1", "pipeline"))
    await world.reconciler.execution_seen(first, first_attempt=True)
    assert world.api.gets == [("Workflow", NS, "pipeline")]  # not watched yet: read, and not kept
    assert len(world.reconciler.workflows) == 0

    world.reconciler.workflows.seen(NS, "pipeline", SIMPLE)
    world.reconciler.workflows.gone(NS, "pipeline")  # the watch said it was deleted
    del world.api.objects[("Workflow", NS, "pipeline")]
    second = ObjectView.of(add_execution(world, "run-2", "pipeline"))
    with pytest.raises(Retry, match="not found"):
        await world.reconciler.execution_seen(second, first_attempt=False)
    assert await world.execution_row(second.uid) is None


async def test_a_missing_workflow_retries_and_marks_the_execution_pending_on_the_first_attempt_only(
    world: World,
) -> None:
    execution = ObjectView.of(add_execution(world, "run-1", "absent"))

    with pytest.raises(Retry) as first:
        await world.reconciler.execution_seen(execution, first_attempt=True)

    assert "absent" in str(first.value)
    assert first.value.delay_s > 0
    assert len(world.api.patches) == 1
    patch = world.api.patches[0]
    assert (patch.ref.kind, patch.ref.namespace, patch.ref.name, patch.ref.uid) == (
        "Execution",
        NS,
        "run-1",
        execution.uid,
    )
    assert patch.status["phase"] == "Pending"
    accepted = conditions_by_type(patch.status)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "WorkflowNotFound")
    assert "absent" in accepted["message"]

    with pytest.raises(Retry):
        await world.reconciler.execution_seen(execution, first_attempt=False)
    with pytest.raises(Retry):
        await world.reconciler.execution_seen(execution, first_attempt=False)

    assert len(world.api.patches) == 1
    assert await world.execution_row(execution.uid) is None
    assert world.writer.track_calls == []


async def test_an_execution_pending_on_a_missing_workflow_starts_once_the_workflow_appears(world: World) -> None:
    execution = ObjectView.of(add_execution(world, "run-1", "late", input={"n": 2}))
    with pytest.raises(Retry):
        await world.reconciler.execution_seen(execution, first_attempt=True)

    add_workflow(world, "late", SIMPLE)
    outcome = await world.reconciler.execution_seen(execution, first_attempt=False)

    assert outcome == Outcome()
    row = await world.execution_row(execution.uid)
    assert row is not None and row.input == {"n": 2}


async def test_an_execution_of_an_invalid_workflow_fails_as_workflow_invalid_and_starts_nothing(
    world: World,
) -> None:
    add_workflow(world, "broken", UNKNOWN_STEP)
    execution = add_execution(world, "run-1", "broken")

    outcome = await world.reconciler.execution_seen(ObjectView.of(execution), first_attempt=True)

    assert outcome.status["phase"] == "Failed"
    accepted = conditions_by_type(outcome.status)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "WorkflowInvalid")
    assert "'broken' is invalid" in accepted["message"]
    assert "steps.ghost" in accepted["message"]
    assert "steps.ghost" in outcome.status["error"]
    assert outcome.event is not None
    assert outcome.event[:2] == ("Warning", "WorkflowInvalid")
    assert await world.execution_row(execution["metadata"]["uid"]) is None
    assert await world.db.run(world.db.store.get_workflow, workflow_key(NS, "broken")) is None
    assert world.writer.track_calls == []

    again = await world.reconciler.execution_seen(ObjectView.of(with_status(execution, outcome)), first_attempt=False)

    assert again == Outcome()
    assert await world.execution_row(execution["metadata"]["uid"]) is None
    assert world.writer.track_calls == []


async def _refused_start(
    world: World, workflow: str, spec: dict[str, Any], input: Any, reason: str
) -> tuple[dict[str, Any], Outcome, dict[str, Any]]:
    """An execution of ``workflow`` seen once: it failed, Accepted False for ``reason``; the execution,
    the outcome and its Accepted condition."""
    add_workflow(world, workflow, spec)
    execution = add_execution(world, "run-1", workflow, input=input)
    outcome = await world.reconciler.execution_seen(ObjectView.of(execution), first_attempt=True)
    assert outcome.status["phase"] == "Failed"
    accepted = conditions_by_type(outcome.status)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", reason)
    return execution, outcome, accepted


async def test_an_input_that_breaks_the_input_schema_fails_as_input_invalid_and_starts_nothing(
    world: World,
) -> None:
    execution, outcome, accepted = await _refused_start(world, "typed", TYPED_INPUT, {"count": "three"}, "InputInvalid")
    assert "input does not match the workflow's input schema at count" in accepted["message"]
    assert "'three' is not of type 'integer'" in accepted["message"]
    assert outcome.status["error"] == accepted["message"]
    assert outcome.event is not None and outcome.event[:2] == ("Warning", "InputInvalid")
    uid = execution["metadata"]["uid"]
    assert await world.execution_row(uid) is None
    assert await world.db.run(world.db.store.list_executions) == []

    world.api.gets.clear()
    again = await world.reconciler.execution_seen(ObjectView.of(with_status(execution, outcome)), first_attempt=False)

    assert again == Outcome()
    assert world.api.gets == []  # refusals are final: not even the Workflow is read again
    assert await world.execution_row(uid) is None
    assert world.writer.track_calls == []


# -- Execution: deleting -------------------------------------------------------------------


async def test_deleting_a_running_execution_records_execution_cancelled_and_forgets_it(world: World) -> None:
    uid = await started_execution(world, "run-1", "pipeline", SIMPLE)
    assert world.writer.refs.get(uid) is not None
    execution = ObjectView.of(world.api.objects[("Execution", NS, "run-1")])

    await world.reconciler.execution_deleted(execution)

    history = await world.history(uid)
    cancelled = [e for e in history if isinstance(e, ev.ExecutionCancelled)]
    assert len(cancelled) == 1
    assert "run-1" in cancelled[0].reason
    assert (await world.engine.state_of(uid)).phase == ExecutionPhase.CANCELLED
    assert uid not in world.writer.refs
    assert world.writer.forgotten == [uid]


async def test_deleting_a_finished_execution_does_not_raise_nor_cancel_it(world: World) -> None:
    uid = await started_execution(world, "run-1", "pipeline", {"timeline": ["only"]})
    await complete_step(world, uid, "only", {"done": True})
    assert (await world.engine.state_of(uid)).phase == ExecutionPhase.SUCCEEDED
    before = await world.history(uid)

    await world.reconciler.execution_deleted(ObjectView.of(world.api.objects[("Execution", NS, "run-1")]))

    after = await world.history(uid)
    assert after == before
    assert not any(isinstance(e, ev.ExecutionCancelled) for e in after)
    assert world.writer.forgotten == [uid]


async def test_deleting_a_never_started_execution_does_not_raise(world: World) -> None:
    execution = ObjectView.of(add_execution(world, "run-1", "absent"))

    await world.reconciler.execution_deleted(execution)

    assert await world.execution_row(execution.uid) is None
    assert world.writer.forgotten == [execution.uid]


# -- Approval ------------------------------------------------------------------------------


async def test_approving_a_waiting_step_applies_it_records_the_approver_and_payload_and_posts_approved(
    world: World,
) -> None:
    uid = await waiting_for_approval(world)
    approval = approval_body(
        "ok-go",
        {"execution": "deploy-1", "step": "go", "approver": "alice@example.com", "payload": {"ticket": "CHG-42"}},
    )

    outcome = await world.reconciler.approval_created(approval)

    assert outcome.status["phase"] == "Applied"
    assert outcome.status["approver"] == "alice@example.com"
    assert outcome.status["message"] == "step go of deploy-1 approved by alice@example.com"
    applied = conditions_by_type(outcome.status)["Applied"]
    assert (applied["status"], applied["reason"]) == ("True", "Applied")
    assert outcome.event is None
    granted = [e for e in await world.history(uid) if isinstance(e, ev.ApprovalGranted)]
    assert granted == [ev.ApprovalGranted("go", "alice@example.com", {"ticket": "CHG-42"}, request_id=approval.uid)]
    state = await world.engine.state_of(uid)
    assert "go" not in state.approvals
    assert state.steps["finish"].token is not None  # the timeline moved on
    assert len(world.api.events) == 1
    posted = world.api.events[0]
    assert (posted.ref.kind, posted.ref.namespace, posted.ref.name, posted.ref.uid) == (
        "Execution",
        NS,
        "deploy-1",
        uid,
    )
    assert (posted.type_, posted.reason) == ("Normal", "Approved")
    assert "alice@example.com" in posted.note
    assert world.writer.bucket.taken == 1


async def test_a_reconciler_given_the_operator_s_write_bucket_spends_from_it_not_the_writer_s(world: World) -> None:
    shared = FakeBucket()
    world.reconciler = Reconciler(
        world.engine,
        world.api,  # type: ignore[arg-type]
        world.writer,  # type: ignore[arg-type]
        clock=world.clock,
        approvers=world.approvers,
        writes=shared,  # type: ignore[arg-type]
    )
    await waiting_for_approval(world)
    approval = approval_body("ok-go", {"execution": "deploy-1", "step": "go", "approver": "alice"})
    assert (await world.reconciler.approval_created(approval)).status["phase"] == "Applied"
    assert (shared.taken, world.writer.bucket.taken) == (1, 0)


async def test_an_approval_delivered_again_after_a_restart_stays_applied_and_is_not_recorded_twice(
    world: World,
) -> None:
    # Found by tests/chaos: the operator died after the engine recorded the approval and before
    # the Approval's status was written; on resume kopf delivered it again and it showed Refused.
    uid = await waiting_for_approval(world)
    approval = approval_body("ok-go", {"execution": "deploy-1", "step": "go", "approver": "alice"})
    await world.reconciler.approval_created(approval)

    again = await world.reconciler.approval_created(approval)

    assert again.status["phase"] == "Applied", again.status
    assert again.event is None
    granted = [e for e in await world.history(uid) if isinstance(e, ev.ApprovalGranted)]
    assert len(granted) == 1


async def test_a_second_approval_by_someone_else_for_a_step_already_approved_is_refused(world: World) -> None:
    await waiting_for_approval(world)
    await world.reconciler.approval_created(
        approval_body("ok-go", {"execution": "deploy-1", "step": "go", "approver": "alice"})
    )

    late = await world.reconciler.approval_created(
        approval_body("me-too", {"execution": "deploy-1", "step": "go", "approver": "bob"})
    )

    assert late.status["phase"] == "Refused"


async def test_an_approval_without_an_approver_is_applied_in_the_name_of_nobody_known_when_claims_are_trusted(
    world: World,
) -> None:
    world.approvers.trusts_claims = True
    uid = await waiting_for_approval(world)

    outcome = await world.reconciler.approval_created(approval_body("ok", {"execution": "deploy-1", "step": "go"}))

    assert outcome.status["phase"] == "Applied"
    assert outcome.status["approver"].startswith("unknown")
    granted = [e for e in await world.history(uid) if isinstance(e, ev.ApprovalGranted)]
    assert len(granted) == 1 and granted[0].approver.startswith("unknown") and granted[0].payload is None


async def test_rejecting_a_waiting_step_records_approval_rejected_and_fails_the_execution(world: World) -> None:
    uid = await waiting_for_approval(world)
    approval = approval_body(
        "no-go",
        {"execution": "deploy-1", "step": "go", "approver": "bob", "decision": "Reject", "reason": "freeze"},
    )

    outcome = await world.reconciler.approval_created(approval)

    assert outcome.status["phase"] == "Applied"
    assert outcome.status["message"] == "step go of deploy-1 rejected by bob"
    rejected = [e for e in await world.history(uid) if isinstance(e, ev.ApprovalRejected)]
    assert rejected == [ev.ApprovalRejected("go", "bob", "freeze", request_id=approval.uid)]
    assert not any(isinstance(e, ev.ApprovalGranted) for e in await world.history(uid))
    assert (await world.engine.state_of(uid)).phase == ExecutionPhase.FAILED
    assert [(e.type_, e.reason) for e in world.api.events] == [("Normal", "Rejected")]


async def test_an_approval_naming_a_missing_execution_is_refused_saying_it_was_not_found(world: World) -> None:
    outcome = await world.reconciler.approval_created(
        approval_body("ok", {"execution": "ghost", "step": "go", "approver": "alice"})
    )

    assert outcome.status["phase"] == "Refused"
    assert outcome.status["message"] == "execution 'ghost' not found"
    assert outcome.status["approver"] == "alice"
    applied = conditions_by_type(outcome.status)["Applied"]
    assert (applied["status"], applied["reason"]) == ("False", "Refused")
    assert outcome.event == ("Warning", "Refused", "execution 'ghost' not found")
    assert world.api.events == []


async def test_an_approval_for_an_execution_the_engine_never_started_is_refused(world: World) -> None:
    add_execution(world, "pending-1", "absent")

    outcome = await world.reconciler.approval_created(
        approval_body("ok", {"execution": "pending-1", "step": "go", "approver": "alice"})
    )

    assert outcome.status["phase"] == "Refused"
    assert outcome.status["message"] == "execution 'pending-1' has not started"
    assert world.api.events == []


async def test_an_approval_for_a_step_that_is_not_waiting_is_refused_saying_what_is_pending(world: World) -> None:
    uid = await started_execution(world, "deploy-1", "deploy", APPROVAL_AFTER_FIRST)
    before = await world.history(uid)

    outcome = await world.reconciler.approval_created(
        approval_body("too-early", {"execution": "deploy-1", "step": "go", "approver": "alice"})
    )

    assert outcome.status["phase"] == "Refused"
    assert "no approval is pending for step 'go'" in outcome.status["message"]
    assert "(pending: none)" in outcome.status["message"]
    assert outcome.event is not None and outcome.event[:2] == ("Warning", "Refused")
    assert await world.history(uid) == before
    assert world.api.events == []


async def test_a_second_approval_of_the_same_step_is_refused(world: World) -> None:
    uid = await waiting_for_approval(world)
    spec = {"execution": "deploy-1", "step": "go", "approver": "alice"}
    first = await world.reconciler.approval_created(approval_body("ok-1", spec))
    assert first.status["phase"] == "Applied"

    second = await world.reconciler.approval_created(approval_body("ok-2", spec))

    assert second.status["phase"] == "Refused"
    assert "no approval is pending for step 'go'" in second.status["message"]
    assert sum(isinstance(e, ev.ApprovalGranted) for e in await world.history(uid)) == 1


async def test_an_approval_whose_status_already_has_a_phase_gets_an_empty_outcome(world: World) -> None:
    uid = await waiting_for_approval(world)
    before = await world.history(uid)
    world.api.gets.clear()

    outcome = await world.reconciler.approval_created(
        approval_body("ok", {"execution": "deploy-1", "step": "go", "approver": "alice"}, status={"phase": "Applied"})
    )

    assert outcome == Outcome()
    assert await world.history(uid) == before
    assert world.api.gets == [] and world.api.events == []
    assert "go" in (await world.engine.state_of(uid)).approvals


# -- References are names in the object's own namespace -------------------------------------

PATHS_OUT = [
    pytest.param("../../team-b/workflows/payroll", id="parent-path-to-another-namespace"),
    pytest.param("payroll/../../../team-b/workflows/payroll", id="path-through-a-name"),
    pytest.param("%2e%2e%2fteam-b", id="percent-encoded-path"),
    pytest.param("payroll\n", id="trailing-newline"),
    pytest.param("Payroll", id="uppercase"),
    pytest.param("a" * 254, id="254-characters"),
]


@pytest.mark.parametrize("reference", PATHS_OUT)
async def test_an_execution_whose_workflow_is_not_a_name_is_refused_naming_the_field_and_nothing_is_read(
    world: World, reference: str
) -> None:
    # Even if the CRD schema let it through: the name never reaches a request path.
    world.api.put("Workflow", {**body("payroll", SIMPLE), "metadata": {"namespace": "team-b", "name": "payroll"}})
    execution = add_execution(world, "run-1", reference)

    outcome = await world.reconciler.execution_seen(ObjectView.of(execution), first_attempt=True)

    assert outcome.status["phase"] == "Failed"
    accepted = conditions_by_type(outcome.status)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidReference")
    assert accepted["message"].startswith("spec.workflow ")
    assert "is not a Kubernetes object name" in accepted["message"] and "253 characters" in accepted["message"]
    assert outcome.event is not None and outcome.event[:2] == ("Warning", "InvalidReference")
    assert world.api.gets == [] and world.api.patches == []
    assert await world.db.run(world.db.store.list_executions) == []
    assert await world.db.run(world.db.store.get_workflow, "team-b/payroll") is None


@pytest.mark.parametrize("reference", PATHS_OUT)
async def test_an_approval_whose_execution_is_not_a_name_is_refused_naming_the_field_and_nothing_is_read(
    world: World, reference: str
) -> None:
    uid = await waiting_for_approval(world)
    before = await world.history(uid)
    world.api.gets.clear()

    outcome = await world.reconciler.approval_created(
        approval_body("sneaky", {"execution": reference, "step": "go", "approver": "mallory"})
    )

    assert outcome.status["phase"] == "Refused"
    assert outcome.status["message"].startswith("spec.execution ")
    assert "is not a Kubernetes object name" in outcome.status["message"]
    assert outcome.event is not None and outcome.event[:2] == ("Warning", "Refused")
    assert world.api.gets == [] and world.api.events == []
    assert await world.history(uid) == before


def test_the_workflow_key_is_built_only_from_valid_names() -> None:
    bad = [("team-a", "../team-b/payroll"), ("team-a", "x/y"), ("team-a/..", "payroll"), ("", "payroll"), ("ns", "")]
    for namespace, name in bad:
        with pytest.raises(InvalidName, match=r"is not a Kubernetes (object|namespace) name|must name an object"):
            workflow_key(namespace, name)
    assert workflow_key("team-a", "payroll.v2") == "team-a/payroll.v2"


# -- Payload limits ----------------------------------------------------------------------------


async def test_an_execution_input_over_the_payload_limit_is_refused_naming_the_limit(world: World) -> None:
    world.reconciler.max_payload_bytes = 1024
    add_workflow(world, "pipeline", SIMPLE)
    execution = add_execution(world, "run-1", "pipeline", input={"blob": "x" * 2000})

    outcome = await world.reconciler.execution_seen(ObjectView.of(execution), first_attempt=True)

    accepted = conditions_by_type(outcome.status)["Accepted"]
    assert (outcome.status["phase"], accepted["reason"]) == ("Failed", "InputTooLarge")
    assert (
        accepted["message"]
        == "spec.input is 2011 bytes of JSON, over the 1024-byte payload limit (--max-payload-bytes)"
    )
    assert await world.db.run(world.db.store.list_executions) == []


async def test_an_approval_payload_over_the_payload_limit_is_refused_naming_the_limit(world: World) -> None:
    uid = await waiting_for_approval(world)
    world.reconciler.max_payload_bytes = 1024

    outcome = await world.reconciler.approval_created(
        approval_body("big", {"execution": "deploy-1", "step": "go", "approver": "alice", "payload": "x" * 2000})
    )

    assert outcome.status["phase"] == "Refused"
    assert "spec.payload is 2002 bytes of JSON, over the 1024-byte payload limit" in outcome.status["message"]
    assert "go" in (await world.engine.state_of(uid)).approvals


# -- Who approved ------------------------------------------------------------------------------


async def test_an_approval_is_refused_when_its_approver_cannot_be_verified_and_the_step_keeps_waiting(
    world: World,
) -> None:
    uid = await waiting_for_approval(world)
    before = await world.history(uid)
    world.approvers.answer = "the approver cannot be verified: no MutatingAdmissionPolicy ...; install it"

    outcome = await world.reconciler.approval_created(
        approval_body("ok-go", {"execution": "deploy-1", "step": "go", "approver": "the-ceo"})
    )

    assert outcome.status["phase"] == "Refused"
    assert outcome.status["message"] == world.approvers.answer
    assert outcome.event == ("Warning", "Refused", world.approvers.answer)
    assert await world.history(uid) == before
    assert world.api.events == []


async def test_an_approval_with_no_approver_stamped_is_refused_although_the_policy_is_installed(
    world: World,
) -> None:
    uid = await waiting_for_approval(world)
    before = await world.history(uid)

    outcome = await world.reconciler.approval_created(approval_body("old", {"execution": "deploy-1", "step": "go"}))

    assert outcome.status["phase"] == "Refused"
    assert "the approver cannot be verified: spec.approver is empty" in outcome.status["message"]
    assert await world.history(uid) == before


async def test_an_unreachable_policy_check_retries_the_approval_instead_of_deciding(world: World) -> None:
    uid = await waiting_for_approval(world)
    before = await world.history(uid)
    world.approvers.unreachable = True

    with pytest.raises(Retry, match="could not read the admission policies"):
        await world.reconciler.approval_created(
            approval_body("ok-go", {"execution": "deploy-1", "step": "go", "approver": "alice"})
        )

    assert await world.history(uid) == before


# -- replicas that split the shards ---------------------------------------------------------

LIMITED = {**SIMPLE, "flowControl": {"key": "input.customer", "concurrency": 2}}


async def test_a_workflow_with_a_concurrency_limit_is_ready_while_replicas_split_the_shards(world: World) -> None:
    world.engine.set_ownership(lambda shard: True)  # a replica of a sharded operator: the store admits
    outcome = await world.reconciler.workflow_changed(ObjectView.of(body("limited", LIMITED, generation=2)))
    ready = conditions_by_type(outcome.status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Compiled")
