"""The Workflow specs as the operator's watch last delivered them: an Execution's start reads its
Workflow here, not from the API server.

kopf watches every Workflow in the operator's namespaces already (to compile it and say Ready); a
watch handler (`handlers.build_registry`) keeps each one's spec here, and drops it when the watch
says the Workflow was deleted. Before, every Execution cost a GET of its Workflow. A spec not seen
yet (the operator has just started and kopf has not listed it, or the Workflow was created an
instant before its Execution) is still read from the API server, and that read is not kept: only
the watch writes here, so a slow GET can never put back a spec the watch has replaced since.

Like any informer-fed controller, an Execution created just after its Workflow changed may start
with the spec as it was an instant before (the watch's lag, milliseconds): the spec is snapshotted
into the store at the start, and the status says which one ran (`steps`).

Memory: one spec per Workflow watched (each bounded by the API server's object size), as the
reconciler's `_stored_specs` already held for the valid ones.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WatchedWorkflows"]

JSON = Any


class WatchedWorkflows:
    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], dict[str, JSON]] = {}

    def seen(self, namespace: str, name: str, spec: dict[str, JSON]) -> None:
        """The watch delivered this Workflow (listed, added or modified) with `spec`."""
        self._specs[namespace, name] = spec

    def gone(self, namespace: str, name: str) -> None:
        """The watch said this Workflow was deleted."""
        self._specs.pop((namespace, name), None)

    def spec_of(self, namespace: str, name: str) -> dict[str, JSON] | None:
        """The spec last delivered, or None when the watch has not delivered this Workflow (or it was deleted)."""
        return self._specs.get((namespace, name))

    def __len__(self) -> int:
        return len(self._specs)
