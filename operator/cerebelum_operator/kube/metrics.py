"""Prometheus metrics of the operator, served on the health address at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from ..engine import ExecutionState

__all__ = ["OperatorMetrics"]


class OperatorMetrics:
    """A private registry (not the global one), so a test can run two operators in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.leader = Gauge(
            "cerebelum_leader", "1 while this instance holds the Lease and runs the engine.", registry=self.registry
        )
        self.commits = Counter(
            "cerebelum_engine_commits", "Decisions the engine committed to the store.", registry=self.registry
        )
        self.finished = Counter(
            "cerebelum_executions_finished",
            "Executions that reached a terminal phase.",
            ["phase"],
            registry=self.registry,
        )
        self.api_writes = Counter(
            "cerebelum_kube_api_writes",
            "Writes the operator made to the Kubernetes API outside kopf, by kind.",
            ["kind"],
            registry=self.registry,
        )

    def on_change(self, execution_id: str, state: ExecutionState) -> None:
        """An engine change listener: count commits and finished executions."""
        self.commits.inc()
        if state.phase.terminal:
            self.finished.labels(phase=state.phase.value).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
