"""What engines that split the shards do not honour yet: refused wherever a workflow comes in.

A workflow's ``flowControl.concurrency`` is admitted by each engine's own count of its executions
(`flow_control.SlotBook`), so on a split the limit would hold per engine, not across them. The
gRPC API refuses such a workflow when it is applied (`server.routing.refusal_of`); the operator,
whose Workflows come from the API server, says so in the Workflow's status and refuses its
Executions (`kube.reconciler`). Rate limits are not here: the store counts them across engines.
"""

from __future__ import annotations

from ..model import WorkflowDefinition

__all__ = ["NOT_SPLIT", "split_refusal"]

NOT_SPLIT = (
    "is not supported yet when engines split the shards (--shards, or the operator's sharding): run one engine for it"
)


def split_refusal(definition: WorkflowDefinition) -> str | None:
    """Why engines that split the shards refuse this workflow; None when they run it."""
    flow = definition.flow_control
    if flow is not None and flow.concurrency is not None:
        return f"flowControl.concurrency {NOT_SPLIT}"
    return None
