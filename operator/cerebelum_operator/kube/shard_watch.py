"""Which watched objects this operator replica acts on, when several replicas share the shards.

Every replica watches every object (kopf's watch has one label selector per resource, fixed at
start, and shards move while it runs), and this filter, run on each raw watch event before kopf
sees it (`echoes.install_echo_filter`), lets through only the objects of the shards this replica
owns now. kopf never sees another replica's objects: it neither runs their handlers nor touches
their finalizers, and keeps no memory of them. When a shard arrives here its objects are adopted
by a list (`shard_replica.ShardObjects`), not by waiting for their next event.

- An Execution's shard: its `cerebelum.io/shard` label, which the operator writes on the objects it
  creates itself (a child's, a Schedule's), else the shard of its uid (the engine id of an
  Execution a user created, which is placed there: `ShardHost.place`, every replica owning the
  shard of the ids it starts).
- An Approval's or a Signal's: the shard of the Execution it names, as the Execution watch last
  showed it; one whose Execution has not been shown (or has left the watch, finished) goes to
  the owner of shard 0, which refuses it or hands it on (`ShardObjects.adopt`).
- A Schedule's: shard 0, whose owner runs the engine's schedules.
- A Workflow: every replica (each keeps its spec, and each starts executions of it).

Memory: one small entry per Execution in the watch (finished ones leave it), as kopf's own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from ..model.shards import shard_of
from .resources import GROUP

__all__ = ["SHARD_LABEL", "ShardWatch"]

JSON = Any
SHARD_LABEL = "cerebelum.io/shard"


class ShardWatch:
    def __init__(self, *, shards: int, owned: Callable[[], Collection[int]]) -> None:
        self.shards = shards
        self._owned = owned
        self._executions: dict[tuple[str, str], tuple[str, int]] = {}  # (namespace, name) -> (uid, shard)
        self.dropped = 0  # events of other replicas' objects

    def shard_of_object(self, obj: dict[str, JSON]) -> int:
        """An Execution object's shard (its label, else its uid's)."""
        metadata = obj.get("metadata") or {}
        label = (metadata.get("labels") or {}).get(SHARD_LABEL)
        if isinstance(label, str) and label.isdigit() and int(label) < self.shards:
            return int(label)
        return shard_of(str(metadata.get("uid")), shards=self.shards)

    def target_shard(self, namespace: str, execution: object) -> int | None:
        """The shard of the Execution named `execution` in `namespace`, as last watched (None: unknown)."""
        seen = self._executions.get((namespace, execution)) if isinstance(execution, str) else None
        return None if seen is None else seen[1]

    def request_shard(self, obj: dict[str, JSON]) -> int:
        """An Approval's or a Signal's shard: its Execution's as watched, else the one a replica that
        looked it up wrote on it (`cerebelum.io/shard`), else 0."""
        metadata = obj.get("metadata") or {}
        target = self.target_shard(str(metadata.get("namespace")), (obj.get("spec") or {}).get("execution"))
        if target is not None:
            return target
        label = (metadata.get("annotations") or {}).get(SHARD_LABEL)
        if isinstance(label, str) and label.isdigit() and int(label) < self.shards:
            return int(label)
        return 0

    def uids_in(self, shards: Collection[int]) -> list[str]:
        """The uids of the watched Executions of these shards."""
        return [uid for uid, shard in self._executions.values() if shard in shards]

    def wanted(self, obj: dict[str, JSON]) -> bool:
        """Whether an Execution object is of a shard this replica owns."""
        return self.owns(self.shard_of_object(obj))

    def owns(self, shard: int) -> bool:
        return shard in self._owned()

    def admits(self, plural: str, raw_event: dict[str, JSON]) -> bool:
        """Whether kopf may see this raw watch event of a resource of ours called `plural`."""
        obj = raw_event.get("object")
        if not isinstance(obj, dict):
            return True
        metadata = obj.get("metadata") or {}
        namespace = str(metadata.get("namespace"))
        if plural == "executions":
            shard = self.shard_of_object(obj)
            key = (namespace, str(metadata.get("name")))
            if raw_event.get("type") == "DELETED":
                self._executions.pop(key, None)
            else:
                self._executions[key] = (str(metadata.get("uid")), shard)
        elif plural in ("approvals", "signals"):
            shard = self.request_shard(obj)
        elif plural == "schedules":
            shard = 0
        else:
            return True
        if self.owns(shard):
            return True
        self.dropped += 1
        return False


def is_ours(resource: Any) -> bool:
    """Whether kopf's `Resource` is one of this operator's kinds."""
    return getattr(resource, "group", None) == GROUP
