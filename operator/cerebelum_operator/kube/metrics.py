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
        self.shards_owned = Gauge(
            "cerebelum_shards_owned",
            "Shards this replica owns now (with --shard-group; 0 otherwise).",
            registry=self.registry,
        )
        self.watch_events_of_others = Gauge(
            "cerebelum_kube_watch_events_of_other_replicas",
            "Watch events of objects of other replicas' shards, dropped before kopf (with --shard-group).",
            registry=self.registry,
        )
        self.objects_adopted = Gauge(
            "cerebelum_kube_objects_adopted",
            "Objects handled when their shard arrived here, before any event of theirs (with --shard-group).",
            registry=self.registry,
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
        self.api_reads = Counter(
            "cerebelum_kube_api_reads",
            "Objects the operator read by name from the Kubernetes API outside kopf's watches, by kind"
            " (a Workflow only when the watch has not delivered it yet).",
            ["kind"],
            registry=self.registry,
        )
        self.echoes_dropped = Gauge(
            "cerebelum_kube_status_echoes_dropped",
            "Watch events that only echoed the operator's own status writes, dropped before kopf processed them.",
            registry=self.registry,
        )
        self.execution_watch_events = Gauge(
            "cerebelum_kube_execution_watch_events",
            "Execution watch events kopf processed (echoes of our own status writes are not among them).",
            registry=self.registry,
        )
        self.status_recent_from_store = Gauge(
            "cerebelum_kube_status_history_reads",
            "Status writes that read the history's last events from the store (the others had them in memory).",
            registry=self.registry,
        )
        self.status_recent_from_memory = Gauge(
            "cerebelum_kube_status_history_from_memory",
            "Status writes whose recent events came from the operator's memory, with no store read.",
            registry=self.registry,
        )
        self.execution_handler_runs = Counter(
            "cerebelum_kube_execution_handler_runs",
            "Times kopf's handler ran for an Execution object (created or resumed); finished objects"
            " are out of the watch and never count.",
            registry=self.registry,
        )
        self.caught_up = Gauge(
            "cerebelum_kube_caught_up",
            "1 once the leader has handled every unfinished Execution it listed at start (readiness).",
            registry=self.registry,
        )
        self.catch_up_seconds = Gauge(
            "cerebelum_kube_catch_up_seconds",
            "How long the leader took from its start of listing to caught up.",
            registry=self.registry,
        )

    def on_change(self, execution_id: str, state: ExecutionState) -> None:
        """An engine change listener: count commits and finished executions."""
        self.commits.inc()
        if state.phase.terminal:
            self.finished.labels(phase=state.phase.value).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
