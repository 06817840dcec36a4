"""`cerebelum operator`: the engine, its gRPC worker endpoint and the kopf reconcilers in one process.

Start order is what makes resurrection safe: take the Lease first (so no second instance
dispatches), then start the engine, which reloads leases, tasks and timers from the store, then
let kopf list every Workflow, Approval, Signal and Schedule and every Execution not labelled
finished, and reconcile each again; the leader is ready once it has caught up (`catch_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import kopf
from lightkube.core.exceptions import ApiError

from ..api import AccessPolicy, Guard
from ..runtime import Clock, SystemClock
from ..server import EngineServer, ServerConfig
from .approvers import AdmissionPolicyCheck, ApproverCheck, TrustClaimedApprover, Unreachable
from .bookkeeping import ExecutionsInMemory
from .catch_up import CatchUp
from .client import KubeApi, NoKubeConfig
from .echoes import OwnEchoes, install_echo_filter
from .expirer import FINISHED_LABEL, ExecutionExpirer
from .expiry import TtlPolicy
from .handlers import build_registry
from .health import HealthServer
from .leader import LeaseElector
from .metrics import OperatorMetrics
from .pod_role import LEADER, STANDBY, PodRoleLabeler
from .rate_limit import TokenBucket
from .reconciler import Reconciler
from .resources import GROUP, VERSION
from .shard_leases import check_shard_names
from .shared_shards import SHARED_KINDS, SharedShards
from .status_writer import FINALIZER, StatusWriter
from .token_review import DEFAULT_AUDIENCE, TokenReviewAuthenticator

__all__ = [
    "EXIT_API_REFUSED",
    "EXIT_LEASE_LOST",
    "EXIT_NO_KUBECONFIG",
    "NoKubeConfig",
    "OperatorConfig",
    "run_operator",
]

log = logging.getLogger(__name__)

EXIT_LEASE_LOST = 75
EXIT_API_REFUSED = 77
EXIT_NO_KUBECONFIG = 78  # sysexits' EX_CONFIG
LIST_PAGE = 500  # objects a list request, kopf's and ours


@dataclass(frozen=True, kw_only=True)
class OperatorConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    namespaces: tuple[str, ...] = ()
    lease_namespace: str = "default"
    lease_name: str = "cerebelum-operator"
    identity: str = field(default_factory=socket.gethostname)
    lease_duration_s: int = 15
    status_interval_s: float = 1.0
    api_writes_per_second: float = 100.0
    health_address: str | None = None
    # "kubernetes": callers present a ServiceAccount token checked by TokenReview; "none": nobody is asked.
    auth: Literal["none", "kubernetes"] = "none"
    token_audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)
    access_policy: AccessPolicy | None = None  # default: AccessPolicy.kubernetes_default()
    # Believe an Approval's spec.approver even when no admission policy stamps it (default: refuse).
    trust_claimed_approver: bool = False
    # Label this instance's pod (`identity` in `lease_namespace`) cerebelum.io/role=leader|standby,
    # for a Service that selects the leader by it; standbys are then Ready (kube/pod_role.py).
    pod_role_label: bool = False
    # How long a finished Execution object stays when its Workflow sets no `ttlAfterFinished`
    # (None: for ever). Never longer than the store's retention period (`server.retention_ms`).
    execution_ttl_ms: int | None = None
    # Several replicas active at once (PostgreSQL): each owns the shards whose Leases it holds in
    # `lease_namespace`, named after this group (`kube/shard_leases.py`); calls reach the others at
    # their `advertise_address` (HOST:PORT). None: one active replica, elected by `lease_name`.
    shard_group: str | None = None
    advertise_address: str | None = None

    def __post_init__(self) -> None:
        self.ttl_policy()  # refuses a time-to-live longer than the store's retention period
        if self.shard_group is not None:
            if self.pod_role_label:
                raise ValueError("with --shard-group every replica serves: there is no leader to label")
            if self.advertise_address is None:
                raise ValueError("with --shard-group give the address other replicas reach this one at")
            check_shard_names(group=self.shard_group, identity=self.identity)  # before anything starts
            # The engine's own checks (a PostgreSQL store, a bounded name and address, no TLS yet).
            replace(self.server, leased_shards=True, replica=self.identity, advertise_address=self.advertise_address)

    def ttl_policy(self) -> TtlPolicy:
        return TtlPolicy(default_ms=self.execution_ttl_ms, retention_ms=self.server.retention_ms)


def _guard(config: OperatorConfig, api: KubeApi, clock: Clock) -> Guard:
    if config.auth == "none":
        log.warning("--auth none: whoever reaches %s can take tasks and start executions", config.server.address)
        return Guard()
    authenticator = TokenReviewAuthenticator(api.client, audiences=config.token_audiences, clock=clock)
    return Guard(authenticator, policy=config.access_policy or AccessPolicy.kubernetes_default())


async def _approver_check(config: OperatorConfig, api: KubeApi, clock: Clock) -> ApproverCheck:
    if config.trust_claimed_approver:
        log.warning("--trust-claimed-approver: Approvals are applied in the name they claim, unverified")
        return TrustClaimedApprover()
    check = AdmissionPolicyCheck(api, clock=clock)
    try:
        problem = await check.problem()
    except Unreachable as error:
        problem = str(error)
    if problem is not None:
        log.warning("Approvals will be refused until this is fixed: %s", problem)
    return check


def _settings(diffbase: ExecutionsInMemory | None = None) -> kopf.OperatorSettings:
    """`diffbase`: where kopf keeps what it last handled (`bookkeeping`); a fresh one if None."""
    settings = kopf.OperatorSettings()
    # kopf turns every handler log line of level INFO into an Event: one API write per handler run.
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = FINALIZER
    # kopf's last-handled record keeps digests, not the spec: a large input must not outgrow the
    # API server's 256 KiB annotation limit (a 422 on every patch, retried forever). An Execution's
    # is kept in memory, not written: one API write fewer per Execution.
    settings.persistence.diffbase_storage = diffbase if diffbase is not None else ExecutionsInMemory()
    # A finished Execution is labelled so (`handlers.execution_finished`) and is out of the watch: a
    # restart neither lists nor handles it, and kopf keeps no memory of it. The initial lists are paged.
    settings.watching.label_selectors[GROUP, VERSION, "executions"] = f"!{FINISHED_LABEL}"
    settings.watching.chunk_size = LIST_PAGE
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    return settings


def _is_executions(resource: kopf.Resource) -> bool:
    return (resource.group, resource.plural) == (GROUP, "executions")


async def run_operator(config: OperatorConfig) -> int:
    """Run until SIGTERM/SIGINT; `NoKubeConfig` before anything starts when no cluster is configured."""
    metrics = OperatorMetrics()
    api = KubeApi.from_env(
        instance=config.identity,
        on_write=lambda kind: metrics.api_writes.labels(kind=kind).inc(),
        on_read=lambda kind: metrics.api_reads.labels(kind=kind).inc(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = (
        HealthServer(config.health_address, metrics=metrics, standby_ready=config.pod_role_label)
        if config.health_address
        else None
    )
    try:
        if health is not None:
            await health.start()
        if config.shard_group is not None:
            return await _share(config, api, stop, health, metrics)
        return await _lead(config, api, stop, health, metrics)
    except ApiError as error:
        log.error("the Kubernetes API refused the operator (%s): %s", error.status.reason, error.status.message)
        return EXIT_API_REFUSED
    finally:
        await api.close()
        if health is not None:
            await health.stop()


async def _catch_up(catch_up: CatchUp, expirer: ExecutionExpirer, metrics: OperatorMetrics) -> None:
    """Ready once caught up; only then does the expirer list the finished objects (it competes with nothing)."""
    while True:
        try:
            await catch_up.run()
            break
        except Exception as error:  # e.g. 429 while the API server's cache of a new CRD fills
            log.warning("listing the Execution objects to catch up failed (%s); trying again in 5 s", error)
            await catch_up.clock.sleep(5)
    metrics.caught_up.set(1)
    metrics.catch_up_seconds.set(catch_up.elapsed_s or 0.0)
    expirer.start_sweeps()


async def _lead(
    config: OperatorConfig, api: KubeApi, stop: asyncio.Event, health: HealthServer | None, metrics: OperatorMetrics
) -> int:
    """Wait for the Lease (or a stop), then run the engine and kopf until stopped."""
    # One clock for every part that waits or times out (docs/architecture.md, "Time").
    clock = SystemClock()
    elector = LeaseElector(
        api.client,
        namespace=config.lease_namespace,
        name=config.lease_name,
        identity=config.identity,
        lease_duration_s=config.lease_duration_s,
        renew_every_s=max(1.0, config.lease_duration_s / 3),
        clock=clock,
    )
    labeler = (
        PodRoleLabeler(
            api.client,
            namespace=config.lease_namespace,
            name=config.identity,
            on_write=lambda: metrics.api_writes.labels(kind="pod_role").inc(),
            clock=clock,
        )
        if config.pod_role_label
        else None
    )

    async def stand_by() -> None:
        if labeler is not None:
            # Before anything else: a restarted container may still carry `leader` from its last
            # run, and it must not become Ready (hence reachable through the Service) with it.
            await labeler.ensure(STANDBY)
        if health is not None:
            health.ready = True  # Ready as a standby only with the label (HealthServer.standby_ready)
        await elector.acquire()
        if health is not None:
            health.ready = False  # not Ready while the engine starts

    acquire = asyncio.create_task(stand_by())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not acquire.done():
        acquire.cancel()
        return 0
    acquire.result()

    def lease_lost() -> None:
        # Exit at once: a successor may already hold the lease, and we must not dispatch beside it.
        # The pod keeps its `leader` label (no time to write it), but it is not Ready while its
        # container restarts, so the Service does not send it workers, and the restarted
        # container labels itself `standby` before it can be Ready again (stand_by above).
        os._exit(EXIT_LEASE_LOST)

    holding = asyncio.create_task(elector.hold(lease_lost), name="lease")
    try:
        return await _operate(config, api, stop, health, metrics, clock, labeler=labeler)
    finally:
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holding
        await elector.release()  # after the engine stopped: a successor must not dispatch beside it


async def _share(
    config: OperatorConfig, api: KubeApi, stop: asyncio.Event, health: HealthServer | None, metrics: OperatorMetrics
) -> int:
    """One of several active replicas: serve at once, with the shards this replica's Leases hold."""
    return await _operate(config, api, stop, health, metrics, SystemClock(), labeler=None)


async def _operate(
    config: OperatorConfig,
    api: KubeApi,
    stop: asyncio.Event,
    health: HealthServer | None,
    metrics: OperatorMetrics,
    clock: Clock,
    *,
    labeler: PodRoleLabeler | None,
) -> int:
    """Run the engine and kopf until stopped: the one leader's, or a replica's among several."""
    server_config = replace(config.server, guard=_guard(config, api, clock))
    if config.shard_group is not None:
        server_config = replace(
            server_config, leased_shards=True, replica=config.identity, advertise_address=config.advertise_address
        )
    server = EngineServer(server_config, clock=clock)
    writer: StatusWriter | None = None
    reconciler: Reconciler | None = None
    expirer: ExecutionExpirer | None = None
    catching_up: asyncio.Task[None] | None = None
    sharing: SharedShards | None = None
    try:
        await server.start()
        server.engine.add_change_listener(metrics.on_change)
        metrics.leader.set(1)
        # One API write budget for the status writer and the reconciler's own writes.
        writes = TokenBucket(rate=config.api_writes_per_second, burst=200, clock=clock)
        echoes = OwnEchoes()
        writer = StatusWriter(
            server.engine, api, clock=clock, min_interval_s=config.status_interval_s, bucket=writes, echoes=echoes
        )
        await writer.start()
        expirer = ExecutionExpirer(
            server.engine,
            api,
            clock=clock,
            policy=config.ttl_policy(),
            bucket=writes,
            namespaces=config.namespaces,
            page=LIST_PAGE,
        )
        writer.add_finish_listener(expirer.on_finished)
        await expirer.start()
        reconciler = Reconciler(
            server.engine,
            api,
            writer,
            clock=clock,
            writes=writes,
            approvers=await _approver_check(config, api, clock),
            max_payload_bytes=config.server.max_payload_bytes,
            schedules=server.schedules,
            schedule_status_interval_s=config.status_interval_s,
            expirer=expirer,
        )
        if config.shard_group is not None:
            diffbase = ExecutionsInMemory(kinds=SHARED_KINDS)
            sharing = SharedShards(server, reconciler, api, diffbase, clock=clock, config=config, page=LIST_PAGE)
            if not await sharing.start(until=stop):  # after its first round: the shards it could take are taken
                return 0  # stopped first; the finally block cleans up
        else:
            diffbase = ExecutionsInMemory()
        catch_up = CatchUp(
            api,
            writer,
            clock=clock,
            namespaces=config.namespaces,
            page=LIST_PAGE,
            wanted=None if sharing is None else sharing.watch.wanted,
        )
        if labeler is not None and not await labeler.ensure(LEADER, until=stop):
            return 0  # stopped while the label could not be written; the finally block cleans up
        if health is not None:
            health.caught_up = lambda: catch_up.done
            health.role, health.ready = ("leader" if sharing is None else "replica"), True
        log.info("engine serving: gRPC on %s, watching %s", config.server.address, list(config.namespaces) or "all")
        catching_up = asyncio.create_task(_catch_up(catch_up, expirer, metrics), name="catch-up")

        def seen(uid: str) -> None:
            metrics.execution_handler_runs.inc()
            catch_up.seen(uid)

        if sharing is not None:
            sharing.objects.on_seen = catch_up.seen
            shared = sharing
            metrics.shards_owned.set_function(lambda: len(shared.host.owned))
            metrics.watch_events_of_others.set_function(lambda: shared.watch.dropped)
            metrics.objects_adopted.set_function(lambda: shared.objects.adopted)
        settings = _settings(diffbase)
        stop_filtering = install_echo_filter(
            settings, echoes, watched=_is_executions, admit=None if sharing is None else sharing.admit
        )
        metrics.echoes_dropped.set_function(lambda: echoes.dropped)
        metrics.execution_watch_events.set_function(lambda: echoes.passed)
        metrics.status_recent_from_store.set_function(lambda: writer.recent_from_store if writer else 0)
        metrics.status_recent_from_memory.set_function(lambda: writer.recent_from_memory if writer else 0)
        try:
            await kopf.operator(
                registry=build_registry(
                    reconciler,
                    on_execution_seen=seen,
                    on_execution_gone=diffbase.forget,
                    hand_on=None if sharing is None else sharing.objects.hand_on,
                ),
                settings=settings,
                standalone=True,
                clusterwide=not config.namespaces,
                namespaces=list(config.namespaces),
                stop_flag=stop,
            )
        finally:
            stop_filtering()
    finally:
        if health is not None:
            health.ready = False
        if catching_up is not None:
            catching_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await catching_up
        metrics.leader.set(0)
        # Every step runs even if one fails (grpc's stop can raise CancelledError while workers
        # are long-polling): the shards must be handed over, or the others wait out their Leases.
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [("engine", server.stop)]
        if sharing is not None:
            steps.insert(0, ("shards", sharing.leave))
        if writer is not None:
            steps.insert(0, ("status writer", writer.stop))
        if expirer is not None:
            steps.insert(0, ("execution expiry", expirer.stop))
        if reconciler is not None:
            steps.insert(0, ("child objects", reconciler.children.stop))
            if reconciler.schedule_objects is not None:
                steps.insert(0, ("schedule objects", reconciler.schedule_objects.stop))
        if labeler is not None:
            # `standby` before the Lease goes: the Service stops sending workers here before a
            # successor can label itself `leader` (best effort: the pod is going away anyway).
            steps.insert(0, ("pod role label", lambda: labeler.try_label(STANDBY)))
        for name, stop_step in steps:
            try:
                await stop_step()
            except (Exception, asyncio.CancelledError) as error:
                log.warning("stopping the %s failed: %r", name, error)
    return 0
