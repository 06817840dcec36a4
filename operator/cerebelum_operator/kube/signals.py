"""Signal objects: a named signal, with data, delivered once to an Execution in the same namespace.

Modelled on Approvals: the sender is what the admission policy stamped from the authenticated user
(`spec.sender`), never what the object claims, and the operator refuses to deliver when it cannot
find that policy (`approvers.SENDER`), unless started with `--trust-claimed-approver`. The Signal's
uid is the request id, so the engine records it once however often the handler runs.
"""

from __future__ import annotations

from typing import Protocol

from ..engine import CommandRejected
from ..engine import commands as cmd
from ..runtime import Clock, EngineService, ExecutionNotFound
from .approvers import SENDER, ApproverCheck, Unreachable
from .children import ChildRefused
from .client import Execution, KubeApi, ObjectRef
from .names import InvalidName, object_name
from .projection import condition, rfc3339
from .rate_limit import TokenBucket
from .views import ObjectView, Outcome, Retry, too_large, with_condition

__all__ = ["UNKNOWN_SENDER", "deliver_signal"]

UNKNOWN_SENDER = "unknown (no admission policy stamped the sender)"


class Reconciling(Protocol):
    """What delivering a Signal needs of the reconciler."""

    engine: EngineService
    api: KubeApi
    approvers: ApproverCheck
    clock: Clock
    writes: TokenBucket
    max_payload_bytes: int

    async def engine_id_of(self, execution: ObjectView) -> str: ...


async def deliver_signal(reconciler: Reconciling, signal: ObjectView) -> Outcome:
    """Deliver the Signal to the named Execution's latest run, or say why it was refused."""
    if signal.status.get("phase"):
        return Outcome()
    spec = signal.spec
    name = str(spec.get("name", ""))
    claimed = spec.get("sender")
    sender = str(claimed or UNKNOWN_SENDER)

    def refused(message: str, run_id: str | None = None) -> Outcome:
        return _outcome(reconciler, signal, "Refused", message, sender, run_id)

    try:
        # Resolved in the Signal's own namespace only, and only once it is a name, not a path.
        execution_name = object_name(spec.get("execution"), field="spec.execution")
    except InvalidName as invalid:
        return refused(str(invalid))
    try:
        unverifiable = await reconciler.approvers.problem(SENDER)
    except Unreachable as error:
        raise Retry(str(error), delay_s=5.0) from error
    if unverifiable is None and not claimed and not reconciler.approvers.trusts_claims:
        unverifiable = (
            "the sender cannot be verified: spec.sender is empty, so the admission policy did not stamp this "
            "Signal (created before the policy was installed?): create the Signal again"
        )
    if unverifiable is not None:
        return refused(unverifiable)
    oversized = too_large("spec.data", spec.get("data"), reconciler.max_payload_bytes)
    if oversized is not None:
        return refused(oversized)
    found = await reconciler.api.get(Execution, signal.namespace, execution_name)
    if found is None:
        return refused(f"execution {execution_name!r} not found in namespace {signal.namespace}")
    execution = ObjectView.of(found)
    try:
        engine_id = await reconciler.engine_id_of(execution)
        run_id = await reconciler.engine.latest_run(engine_id)
    except ChildRefused as invalid:
        return refused(f"execution {execution_name!r} is not a valid view of an execution: {invalid}")
    except ExecutionNotFound:
        return refused(f"execution {execution_name!r} has not started")
    command = cmd.Signal(name=name, data=spec.get("data"), sender=sender, request_id=signal.uid)
    message = f"signal {name} from {sender} delivered to {execution_name}"
    try:
        await reconciler.engine.signal(run_id, command)
    except ExecutionNotFound:
        return refused(f"execution {execution_name!r} has not started", run_id)
    except CommandRejected as rejected:
        state = await reconciler.engine.state_of(run_id)
        if signal.uid in state.signal_request_ids:
            # The operator died after the engine recorded this signal and before the status said
            # so (and the execution ended meanwhile); kopf delivered the Signal again.
            return _outcome(reconciler, signal, "Delivered", message, sender, run_id)
        return refused(str(rejected), run_id)
    ref = ObjectRef(kind="Execution", namespace=signal.namespace, name=execution_name, uid=execution.uid)
    await reconciler.writes.take()
    await reconciler.api.post_event(ref, type_="Normal", reason="Signalled", note=message, action="Signal")
    return _outcome(reconciler, signal, "Delivered", message, sender, run_id)


def _outcome(
    reconciler: Reconciling, signal: ObjectView, phase: str, message: str, sender: str, run_id: str | None
) -> Outcome:
    now = reconciler.clock.now_ms()
    delivered = condition(
        "Delivered",
        "True" if phase == "Delivered" else "False",
        phase,
        message,
        now_ms=now,
        generation=signal.generation,
    )
    status = {
        "phase": phase,
        "message": message,
        "sender": sender,
        "runId": run_id,
        "handledAt": rfc3339(now),
        **with_condition(signal, delivered),
    }
    event = None if phase == "Delivered" else ("Warning", "Refused", message)
    return Outcome(status=status, event=event)
