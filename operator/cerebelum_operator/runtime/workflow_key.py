"""A workflow's key in the store: ``namespace/name`` under the operator, the bare name in dev mode.

The namespace part decides whose workers may take the workflow's tasks, so it is built and read
in one place: the operator builds keys from checked Kubernetes names, the dispatcher and the
worker API read the namespace back from the same type.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkflowKey", "namespace_of"]


@dataclass(frozen=True, slots=True)
class WorkflowKey:
    namespace: str  # "" in dev mode: no namespace, any worker the policy allows
    name: str

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "/" in self.namespace:
            raise ValueError(
                f"a workflow key is a namespace and a name, neither holding '/', and a name is required:"
                f" not {self.namespace!r} and {self.name!r}"
            )

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @classmethod
    def parse(cls, key: str) -> WorkflowKey:
        """The key's parts; `ValueError` for a key no entry point stores (two '/', an empty name)."""
        namespace, _, name = key.rpartition("/")
        return cls(namespace, name)


def namespace_of(key: str) -> str:
    """The namespace of a workflow key: ``ns`` of ``ns/name``, ``""`` in dev mode.

    A reader, so it never raises: the dispatcher asks it of every task, including one whose
    workflow is not known yet (``""``), and must not fail there. It splits where
    `WorkflowKey.parse` does, so the two always agree on keys the entry points store.
    """
    return key.rpartition("/")[0]
