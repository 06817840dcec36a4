"""Child executions as Kubernetes objects: created by the operator, owned by their parent's Execution.

When a child step of an execution the operator projects starts a child, the engine starts the
child (`runtime/relay.py`); this module then creates an Execution object for it in the parent's
namespace, owned by the parent's object (so Kubernetes deletes it with the parent, and its own
delete handler cancels it), named `names.child_object_name`, annotated with the child's engine
id. The reconciler treats such an object as a view of that engine execution, never as a new
start, and only once `verify_child` found that the annotated execution really is a child of the
owner's execution, in this namespace: an annotation anyone can write must not open another
tenant's execution.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..engine import ExecutionState
from ..model.limits import MAX_EXECUTION_ID
from ..runtime import EngineService, ExecutionNotFound, WorkflowKey, namespace_of
from .client import Execution, ObjectRef
from .names import child_object_name
from .resources import API_VERSION
from .shard_watch import SHARD_LABEL

__all__ = [
    "CHILD_ANNOTATION",
    "INPUT_OMITTED_ANNOTATION",
    "MAX_CHILD_INPUT_BYTES",
    "PARENT_LABEL",
    "PARENT_STEP_ANNOTATION",
    "ChildObjects",
    "ChildRefused",
    "Owner",
    "child_body",
    "owned_execution_body",
    "owner_of",
    "stamp_shard",
    "verify_child",
]

log = logging.getLogger(__name__)

JSON = Any

CHILD_ANNOTATION = "cerebelum.io/execution-id"
PARENT_STEP_ANNOTATION = "cerebelum.io/parent-step"
INPUT_OMITTED_ANNOTATION = "cerebelum.io/input-omitted"
PARENT_LABEL = "cerebelum.io/parent-uid"
#: A child's input is copied into its object's spec up to this size (etcd keeps objects under
#: 1.5 MiB; the engine's payload limit is 2 MiB); past it, `spec.input` is left out and an
#: annotation says how large it was (`cerebelum describe` shows it whole).
MAX_CHILD_INPUT_BYTES = 256 * 1024
_REMEMBERED = 10_000  # children whose object was already seen to, so each change does not ask again


class ChildRefused(Exception):
    """The object claims an engine execution it may not view; the message says why."""


@dataclass(frozen=True, slots=True)
class Owner:
    """The Execution an object's ownerReferences name as its controller."""

    name: str
    uid: str


def owner_of(owners: Sequence[Mapping[str, JSON]], *, kind: str = "Execution") -> Owner | None:
    """The controlling owner when it is a `kind` (an Execution, or a Schedule) of this API group, else None."""
    for owner in owners:
        group = str(owner.get("apiVersion", "")).split("/", 1)[0]
        if owner.get("kind") == kind and group == API_VERSION.split("/", 1)[0] and owner.get("controller"):
            return Owner(str(owner.get("name")), str(owner.get("uid")))
    return None


class Engine(Protocol):
    async def state_of(self, execution_id: str) -> ExecutionState: ...


async def verify_child(
    engine: Engine, *, namespace: str, claimed: object, owner: Owner | None, owner_engine_id: str | None
) -> str:
    """The engine id an annotated Execution may view, or `ChildRefused` naming the problem.

    `owner_engine_id` is the engine id the owner Execution views (its uid, or its own annotation),
    None when the owner is not found with the uid its reference names.
    """
    if not isinstance(claimed, str) or not claimed or len(claimed) > MAX_EXECUTION_ID:
        raise ChildRefused(f"annotation {CHILD_ANNOTATION} is not an execution id of at most {MAX_EXECUTION_ID}")
    if owner is None:
        raise ChildRefused(
            f"annotation {CHILD_ANNOTATION} names engine execution {claimed!r}, but no Execution owns this object:"
            " only the operator creates child Executions, owned by their parent"
        )
    if owner_engine_id is None:
        raise ChildRefused(f"the owner Execution {owner.name!r} (uid {owner.uid}) is not in this namespace any more")
    try:
        state = await engine.state_of(claimed)
    except ExecutionNotFound:
        raise ChildRefused(
            f"annotation {CHILD_ANNOTATION} names engine execution {claimed!r}, which does not exist"
        ) from None
    if namespace_of(state.workflow) != namespace:
        raise ChildRefused(f"engine execution {claimed!r} is not an execution of namespace {namespace}")
    parent_chain = None
    if state.parent_id is not None:
        try:
            parent_chain = (await engine.state_of(state.parent_id)).chain_id
        except ExecutionNotFound:
            parent_chain = None
    if parent_chain is None or parent_chain != owner_engine_id:
        raise ChildRefused(
            f"engine execution {claimed!r} is not a child of the owner Execution {owner.name!r}"
            f" (engine id {owner_engine_id!r})"
        )
    return claimed


class ShardReads(Protocol):
    @property
    def split(self) -> bool: ...

    async def shard_of_execution(self, execution_id: str) -> int | None: ...


async def stamp_shard(engine: ShardReads, body: dict[str, JSON], execution_id: str) -> None:
    """Label an Execution object the operator creates with its execution's shard, when several replicas
    share the shards: their watch filters route it by that label (`shard_watch`), as its id's shard
    may not be its own (a child is placed in its parent's)."""
    if not engine.split:
        return
    shard = await engine.shard_of_execution(execution_id)
    if shard is not None:
        body["metadata"]["labels"][SHARD_LABEL] = str(shard)


def child_body(parent: ObjectRef, *, child_id: str, step: str, workflow: str, input: JSON) -> dict[str, JSON]:
    """The Execution object of a child: owned by `parent`, annotated with the child's engine id."""
    return owned_execution_body(
        parent,
        name=child_object_name(parent.name, step, child_id),
        execution_id=child_id,
        labels={PARENT_LABEL: parent.uid},
        annotations={PARENT_STEP_ANNOTATION: step},
        workflow=workflow,
        input=input,
    )


def owned_execution_body(
    owner: ObjectRef,
    *,
    name: str,
    execution_id: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    workflow: str,
    input: JSON,
) -> dict[str, JSON]:
    """An Execution object viewing engine execution `execution_id`, controlled by `owner` (an
    Execution or a Schedule of this group), its input copied up to `MAX_CHILD_INPUT_BYTES`."""
    annotations = {CHILD_ANNOTATION: execution_id, **annotations}
    spec: dict[str, JSON] = {"workflow": workflow}
    size = len(json.dumps(input, separators=(",", ":"), ensure_ascii=False).encode())
    if size <= MAX_CHILD_INPUT_BYTES:
        spec["input"] = input
    else:
        annotations[INPUT_OMITTED_ANNOTATION] = f"{size} bytes of JSON, over {MAX_CHILD_INPUT_BYTES}"
    return {
        "apiVersion": API_VERSION,
        "kind": "Execution",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": dict(labels),
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": owner.kind,
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                }
            ],
        },
        "spec": spec,
    }


class Refs(Protocol):
    def tracked(self, execution_id: str) -> bool: ...

    def ref_of(self, execution_id: str) -> ObjectRef | None: ...


class Api(Protocol):
    async def create(self, resource: type[Any], body: dict[str, JSON]) -> dict[str, JSON] | None: ...

    async def get(self, resource: type[Any], namespace: str, name: str) -> dict[str, JSON] | None: ...


class Bucket(Protocol):
    async def take(self) -> None: ...


class ChildObjects:
    """Creates the Execution object of each child whose parent's object the status writer projects.

    It hears of a child from the engine's change listener (the child's own first decision: it
    exists in the engine before its object does, so the object's handler finds it) and, for a
    crash in between, from `ensure_children` when the parent's object is seen again.
    """

    def __init__(self, engine: EngineService, api: Api, refs: Refs, *, bucket: Bucket) -> None:
        self.engine = engine
        self.api = api
        self.refs = refs
        self.bucket = bucket
        self._pending: set[str] = set()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        engine.add_change_listener(self.on_change)

    def on_change(self, execution_id: str, state: ExecutionState) -> None:
        # A chain's later runs are followed by its first run's object: only a first run gets one.
        if state.parent_id is None or state.first_run_id is not None:
            return
        if execution_id in self._pending or execution_id in self._seen or self.refs.tracked(execution_id):
            return
        self._pending.add(execution_id)
        task = asyncio.create_task(self._for_child(execution_id, state), name=f"child object {execution_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Return once every object creation started so far has finished (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def ensure_children(self, parent: ObjectRef, parent_engine_id: str) -> None:
        """Create the objects of the parent's running children that lack one (after a crash)."""
        try:
            run = await self.engine.latest_run(parent_engine_id)
            state = await self.engine.state_of(run)
        except ExecutionNotFound:
            return
        for index in state.live_children.values():
            link = state.children[index]
            if link.child_id in self._seen:
                continue
            try:
                child = await self.engine.state_of(link.child_id)
            except ExecutionNotFound:
                continue  # not started yet: its first decision will call on_change
            name = child_object_name(parent.name, link.step, link.child_id)
            if await self.api.get(Execution, parent.namespace, name) is None:  # a read, not a write, on resume
                await self._create(parent, link.child_id, child)
            else:
                self._remember(link.child_id)

    async def _for_child(self, child_id: str, child: ExecutionState) -> None:
        try:
            assert child.parent_id is not None
            parent_chain = (await self.engine.state_of(child.parent_id)).chain_id
            parent = self.refs.ref_of(parent_chain)
            if parent is None:
                return  # its parent is no object the operator projects (or no longer)
            await self._create(parent, child_id, child)
        except ExecutionNotFound:
            return
        except Exception:
            log.exception("the Execution object of child %s was not created", child_id)
        finally:
            self._pending.discard(child_id)

    async def _create(self, parent: ObjectRef, child_id: str, child: ExecutionState) -> None:
        key = WorkflowKey.parse(child.workflow)
        if key.namespace != parent.namespace:  # the relay resolves a child's Workflow in its parent's namespace
            log.warning("child %s runs in namespace %r, not its parent's %s", child_id, key.namespace, parent)
            return
        body = child_body(parent, child_id=child_id, step=child.parent_step or "", workflow=key.name, input=child.input)
        await stamp_shard(self.engine, body, child_id)
        await self.bucket.take()
        created = await self.api.create(Execution, body)
        if created is None:
            name = body["metadata"]["name"]
            existing = await self.api.get(Execution, parent.namespace, name)
            annotations = ((existing or {}).get("metadata") or {}).get("annotations") or {}
            if annotations.get(CHILD_ANNOTATION) != child_id:
                log.warning("child %s of %r has no object: the name %s is taken by another", child_id, parent, name)
        self._remember(child_id)

    def _remember(self, child_id: str) -> None:
        self._seen[child_id] = None
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
