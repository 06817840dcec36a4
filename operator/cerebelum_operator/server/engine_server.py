"""One process: store, engine, dispatcher, timers, schedules and the gRPC endpoint.

`cerebelum dev` runs this on SQLite; the operator (Kubernetes) embeds the same pieces.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import gc
import logging
import resource
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # not in grpc-stubs
from grpc_reflection.v1alpha import reflection
from sqlalchemy.engine import make_url

from cerebelum.v1 import schedule_pb2, task_queue_pb2, worker_pb2, workflow_pb2

from ..api import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    Guard,
    ScheduleServicer,
    TaskQueueServicer,
    WorkerServicer,
    WorkflowServicer,
)
from ..api.access import HEALTH_METHODS, REFLECTION_METHODS
from ..engine import DEFAULT_MAX_HISTORY_EVENTS
from ..model.limits import message_limit as grpc_message_limit
from ..model.shards import check_replica
from ..runtime import (
    Clock,
    Database,
    Dispatcher,
    EngineService,
    FlowControlService,
    Relay,
    RetentionService,
    ScheduleService,
    ShardBalancer,
    ShardHost,
    SystemClock,
    TaskQueueService,
    TimerService,
    every,
)
from ..store import StoreCorrupted, StoreLocked, StoreTooNew, open_store
from .gate import AuthenticationGate

if TYPE_CHECKING:
    from ..web import WebServer
from .handlers import strict_service_handler
from .routing import Router
from .tls import HttpsCertificate, PeerTls, TlsFiles

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_UI_ADDRESS",
    "GC_THRESHOLD",
    "EngineServer",
    "PeerTls",
    "ServerConfig",
    "TlsFiles",
    "tune_gc",
]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:7450"
DEFAULT_DATABASE_URL = "sqlite:///.cerebelum/dev.db"
DEFAULT_UI_ADDRESS = "127.0.0.1:7451"
# Engines that split the shards re-read this often the settings another may have changed (the pauses
# of task queues and workflows), in case its word did not reach them.
SHARED_SETTINGS_EVERY_S = 2.0

# The services the engine serves, by their full names (what health checks and reflection name).
WORKER_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"]
WORKFLOW_SERVICE = workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"]
SCHEDULE_SERVICE = schedule_pb2.DESCRIPTOR.services_by_name["ScheduleService"]
TASK_QUEUE_SERVICE = task_queue_pb2.DESCRIPTOR.services_by_name["TaskQueueService"]
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


# Descriptors kept back from the connection cap for the store, the log, kube clients and such.
_RESERVED_DESCRIPTORS = 256


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """What the engine process serves, and the limits that keep one client from starving the rest.

    The connection limits exist because a connection costs a descriptor before its caller is
    authenticated: without them, a thousand sockets that never finish HTTP/2's opening (or that
    open it and then sit idle) used every descriptor, and real workers could not connect.
    """

    address: str = DEFAULT_ADDRESS
    database_url: str = DEFAULT_DATABASE_URL
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    sticky_window_ms: int = 100
    max_poll_wait_ms: int = 30_000
    max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS
    tls: TlsFiles | None = None
    guard: Guard = field(default_factory=Guard)
    # Connections open at once; further ones are closed on accept (lowered to fit the descriptors).
    max_connections: int = 4096
    # A connection must finish the TLS and HTTP/2 handshakes (client preface and SETTINGS) this fast.
    handshake_timeout_ms: int = 5_000
    # A connection with no call in flight this long is closed (GOAWAY); clients reconnect when needed.
    max_connection_idle_ms: int = 120_000
    # Calls in flight on one connection; more wait on the client's side.
    max_concurrent_streams: int = 1_000
    # Server reflection (the API's schema, for grpcurl and such), served without a token.
    reflection: bool = True
    # The store's retention period: executions that ended this long ago are removed (None: kept for
    # ever), their histories first exported as JSON lines into `retention_export` when it is set.
    retention_ms: int | None = None
    retention_export: Path | None = None
    # Where to serve the web UI (HOST:PORT); None: no UI. Same authentication and access policy.
    ui_address: str | None = None
    # When the UI's address cannot be bound, serve on without it (a warning) instead of failing.
    ui_optional: bool = False
    # Scale-out (PostgreSQL): a fixed split, the shards this engine owns (None: every shard, alone on its
    # store), or `auto_shards`: a share kept balanced with the live engines through session locks. Other
    # replicas reach it at `advertise_address`; `replica` names it in shard_owners. `leased_shards`: a
    # share the embedding process takes and hands over (`shard_host`): the operator's shard Leases.
    shards: frozenset[int] | None = None
    auto_shards: bool = False
    leased_shards: bool = False
    advertise_address: str | None = None
    replica: str = ""
    # How replicas that serve TLS reach each other (required then): the CA, and the name to check.
    peer_tls: PeerTls | None = None

    def __post_init__(self) -> None:
        for name in ("max_connections", "handshake_timeout_ms", "max_concurrent_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.retention_ms is not None and self.retention_ms <= 0:
            raise ValueError(f"the retention period must be positive, not {self.retention_ms} ms")
        if self.retention_export is not None and self.retention_ms is None:
            raise ValueError("an export directory for the retention period needs a retention period")
        if sum((self.auto_shards, self.shards is not None, self.leased_shards)) > 1:
            raise ValueError("give the shards this engine owns, or auto, or leased: one of them")
        if self.shards is not None or self.auto_shards or self.leased_shards:
            if self.shards is not None and not self.shards:
                raise ValueError("a replica that owns no shard has nothing to do: give it some, or run one engine")
            if self.advertise_address is None or not self.replica:
                raise ValueError("a replica owning some shards needs the address other replicas reach it at and a name")
            check_replica(self.replica, self.advertise_address)
            if not self.database_url.startswith("postgresql"):
                raise ValueError("engines share a store only on PostgreSQL: scale-out needs a postgresql:// store")
            if self.tls is not None and self.peer_tls is None:
                raise ValueError(
                    "replicas that serve TLS reach each other over TLS too: give --peer-tls-ca (the CA their"
                    " certificates chain to) and --peer-tls-server-name (a name their certificate carries)"
                )
        if self.peer_tls is not None and self.tls is None:
            raise ValueError("--peer-tls-ca needs --tls-cert and --tls-key: the replicas serve TLS, or none does")
        if self.max_connection_idle_ms <= self.max_poll_wait_ms:
            raise ValueError(
                f"max_connection_idle_ms ({self.max_connection_idle_ms}) must exceed max_poll_wait_ms"
                f" ({self.max_poll_wait_ms}): a worker between two long polls is not idle"
            )


class EngineServer:
    def __init__(self, config: ServerConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._server: grpc.aio.Server | None = None
        self._db: Database | None = None
        self._engine: EngineService | None = None
        self._dispatcher: Dispatcher | None = None
        self._timers: TimerService | None = None
        self._schedules: ScheduleService | None = None
        self._retention: RetentionService | None = None
        self._following: asyncio.Task[None] | None = None
        self._flow: FlowControlService | None = None
        self._relay: Relay | None = None
        self._host: ShardHost | None = None
        self._balancer: ShardBalancer | None = None
        self._singletons_running = False
        self._router: Router | None = None
        self._health: health_aio.HealthServicer | None = None
        self._web: WebServer | None = None
        self.port = 0
        self.ui_port = 0

    async def start(self) -> None:
        store = open_store(self.config.database_url)
        try:
            # Claimed before anything reads the store: a second engine must not even migrate it. (Replicas
            # that own some shards each share it: the fence in the store keeps them apart.)
            if not self._split:
                store.claim_exclusively()
            version = store.migrate()
        except (StoreLocked, StoreCorrupted, StoreTooNew) as error:
            store.close()
            raise OSError(f"cannot start the engine: {error}") from error
        except BaseException:
            store.close()
            raise
        if self.config.shards is not None and max(self.config.shards) >= store.shard_count():
            store.close()
            raise OSError(
                f"cannot start the engine: this store has {store.shard_count()} shards (0 to"
                f" {store.shard_count() - 1}), so it has no shard {max(self.config.shards)}"
            )
        db = self._db = Database(store, inline_commits=commits_without_syncing(self.config.database_url))
        engine = self._engine = EngineService(
            db,
            clock=self.clock,
            max_history_events=self.config.max_history_events,
            max_payload_bytes=self.config.max_payload_bytes,
        )
        self._dispatcher = Dispatcher(
            db,
            engine,
            clock=self.clock,
            sticky_window_ms=self.config.sticky_window_ms,
            max_poll_wait_ms=self.config.max_poll_wait_ms,
        )
        self._timers = TimerService(db, engine, clock=self.clock, tasks=self._dispatcher)
        self._relay = Relay(db, engine, clock=self.clock)
        if self._split:  # before the services read their work: none until taken
            self._host = ShardHost(
                db,
                engine,
                self._dispatcher,
                self._timers,
                self._relay,
                clock=self.clock,
                owner=self.config.replica,
                address=self.config.advertise_address,
            )
        self._flow = FlowControlService(db, engine, clock=self.clock)
        await self._flow.start()  # before anything starts an execution: a paused workflow holds it
        await self._dispatcher.start()
        await self._timers.start()
        await self._relay.start()
        self._schedules = ScheduleService(db, engine, clock=self.clock)
        if self.config.retention_ms is not None:
            self._retention = RetentionService(
                db,
                engine,
                clock=self.clock,
                period_ms=self.config.retention_ms,
                export_dir=self.config.retention_export,
            )
        if self._host is not None and self.config.shards is not None:
            await self._host.take(self.config.shards)
        if self._host is not None and self.config.auto_shards:
            self._balancer = ShardBalancer(db, self._host, store.shard_session(self.config.replica), clock=self.clock)
            self._balancer.after_round(self._follow_shard_0)
            await self._balancer.start()
        else:
            await self._follow_shard_0()
        guard = self.config.guard
        exempt = HEALTH_METHODS | (REFLECTION_METHODS if self.config.reflection else frozenset())
        server = self._server = grpc.aio.server(
            options=self.grpc_options(descriptors=raise_descriptor_limit()),
            interceptors=[AuthenticationGate(guard, exempt=exempt)] if guard.enabled else None,
        )
        host = self._host
        limit = grpc_message_limit(self.config.max_payload_bytes)
        peer_options = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
        router = self._router = Router(
            engine,
            clock=self.clock,
            owned=(lambda: None) if host is None else (lambda: host.owned),
            channel_to=functools.partial(_peer_channel, peer_tls=self._peer_tls(), options=peer_options),
            name=self.config.replica,
        )
        worker = WorkerServicer(engine, self._dispatcher, max_payload_bytes=self.config.max_payload_bytes, guard=guard)
        workflows = WorkflowServicer(
            engine, max_payload_bytes=self.config.max_payload_bytes, guard=guard, flow_control=self._flow
        )
        schedules = ScheduleServicer(self._schedules, max_payload_bytes=self.config.max_payload_bytes, guard=guard)
        queues = TaskQueueService(db, self._dispatcher, clock=self.clock)
        if self._split:  # another engine may pause a queue or a workflow: its word comes at once, the store's soon
            self._following = asyncio.get_running_loop().create_task(
                every(self.clock, SHARED_SETTINGS_EVERY_S, self._shared_settings(queues), what="reading the settings"),
                name="follow-shared-settings",
            )
        task_queues = TaskQueueServicer(queues, guard=guard)
        server.add_generic_rpc_handlers(
            (
                strict_service_handler(
                    worker, WORKER_SERVICE, router=router, max_calls_per_stream=self.config.max_concurrent_streams
                ),
                strict_service_handler(workflows, WORKFLOW_SERVICE, router=router),
                strict_service_handler(schedules, SCHEDULE_SERVICE, router=router),
                strict_service_handler(task_queues, TASK_QUEUE_SERVICE, router=router),
            )
        )
        # grpc.health.v1: SERVING overall ("") and for each service until stop() begins.
        health = self._health = health_aio.HealthServicer()
        services = (WORKER_SERVICE, WORKFLOW_SERVICE, SCHEDULE_SERVICE, TASK_QUEUE_SERVICE)
        for name in ("", *(service.full_name for service in services)):
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        if self.config.reflection:
            names = (
                WORKER_SERVICE.full_name,
                WORKFLOW_SERVICE.full_name,
                SCHEDULE_SERVICE.full_name,
                TASK_QUEUE_SERVICE.full_name,
                HEALTH_SERVICE,
                reflection.SERVICE_NAME,
            )
            reflection.enable_server_reflection(names, server)
        try:
            if self.config.tls is not None:
                self.port = server.add_secure_port(self.config.address, self.config.tls.credentials())
            else:
                self.port = server.add_insecure_port(self.config.address)
        except RuntimeError:  # grpcio says only "Failed to bind to address"
            self.port = 0
        if self.port == 0:
            reason, in_use = _why_not_listening(self.config.address)
            advice = "stop what holds it or choose another" if in_use else "choose another"
            await self.stop(grace_s=0)  # the dispatcher, timers and store started above
            self._server = self._health = self._timers = self._relay = self._dispatcher = self._db = None
            self._schedules = self._retention = None
            raise OSError(f"cannot listen on {self.config.address}: {reason}; {advice} with --address HOST:PORT")
        await server.start()
        if self.config.ui_address is not None:
            try:
                await self._start_ui(self.config.ui_address)
            except BaseException:
                await self.stop(grace_s=0)
                raise
        log.info(
            "cerebelum engine serving on %s (%s, %s; store %s, schema v%d)",
            self.config.address,
            "TLS" if self.config.tls is not None else "plaintext",
            "callers authenticated" if guard.enabled else "no authentication",
            _redact(self.config.database_url),
            version,
        )

    def _shared_settings(self, queues: TaskQueueService) -> Callable[[], Awaitable[None]]:
        """What an engine of a split re-reads of the store: the task queues' and workflows' pauses, and the
        flow keys' slots."""
        flow = self._flow

        async def refresh() -> None:
            changed = [*await queues.refresh(), *(await flow.refresh_pauses() if flow is not None else ())]
            if changed:
                log.info("settings another engine changed, applied here: %s", ", ".join(changed))
            if flow is not None:
                await flow.refresh_slots()  # the other engines' admissions, and the slots of shards taken over

        return refresh

    @property
    def _split(self) -> bool:
        """Whether this engine owns some shards only (scale-out), sharing its store with others."""
        return self.config.shards is not None or self.config.auto_shards or self.config.leased_shards

    @property
    def shard_host(self) -> ShardHost:
        """What takes and hands over this engine's shards, for an embedding process that keeps them
        (`leased_shards`: the operator's replicas); call `shards_changed` after each change."""
        if self._host is None:
            raise RuntimeError("this engine owns every shard: it has no shard host")
        return self._host

    async def shards_changed(self) -> None:
        """The shards owned changed outside this server (`leased_shards`): schedules and retention
        follow shard 0."""
        await self._follow_shard_0()

    async def _follow_shard_0(self) -> None:
        """Schedules fire and retention runs on one engine: the owner of shard 0 (every engine alone)."""
        host = self._host
        wanted = host is None or 0 in host.owned
        if wanted == self._singletons_running:
            return
        self._singletons_running = wanted
        services = [s for s in (self._schedules, self._retention) if s is not None]
        for service in services:
            await (service.start() if wanted else service.stop())

    async def _start_ui(self, address: str) -> None:
        # Imported here: an engine without a UI (every test engine) does not load aiohttp's server and Jinja.
        from ..web import ChangeFeed, Sessions, WebServer, WebServices

        engine = self.engine
        feed = ChangeFeed(clock=self.clock)
        engine.add_change_listener(lambda execution_id, _state: feed.changed(execution_id))
        engine.add_progress_listener(feed.changed)
        tls = self.config.tls
        services = WebServices(
            engine=engine,
            sessions=Sessions(self.config.guard, secure_cookie=tls is not None),
            clock=self.clock,
            feed=feed,
            flow_control=self._flow,
            schedules=self._schedules,
        )
        context = HttpsCertificate(tls).context if tls is not None else None
        web = WebServer(services, address=address, ssl_context=context)
        try:
            await web.start()
        except OSError as error:
            if not self.config.ui_optional:
                raise
            log.warning("%s; serving on without the UI (choose another with --ui-address)", error)
            return
        self._web = web
        self.ui_port = web.port

    def grpc_options(self, *, descriptors: int) -> list[tuple[str, int]]:
        """The gRPC server's options; `descriptors` is the process's open-file limit."""
        config = self.config
        message_limit = grpc_message_limit(config.max_payload_bytes)
        connections = max(16, min(config.max_connections, descriptors - _RESERVED_DESCRIPTORS))
        if connections < config.max_connections:
            log.warning(
                "at most %d connections at once (not %d): the open-file limit is %d",
                connections,
                config.max_connections,
                descriptors,
            )
        return [
            ("grpc.max_receive_message_length", message_limit),
            ("grpc.max_send_message_length", message_limit),
            ("grpc.so_reuseport", 0),
            ("grpc.max_allowed_incoming_connections", connections),
            ("grpc.server_handshake_timeout_ms", config.handshake_timeout_ms),
            ("grpc.max_connection_idle_ms", config.max_connection_idle_ms),
            ("grpc.max_concurrent_streams", config.max_concurrent_streams),
            # Keepalive enforcement: a client may ping at most every 10 s, and only while it has
            # calls in flight (a long poll counts); two strikes and the connection is closed.
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.http2.max_ping_strikes", 2),
            # Our own pings find dead peers of calls in flight (a worker whose host vanished).
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.http2.max_pings_without_data", 2),
        ]

    def _peer_tls(self) -> PeerTls | None:
        """The replicas' TLS as configured, presenting this replica's pair when clients must show one."""
        peer, own = self.config.peer_tls, self.config.tls
        if peer is None or own is None or own.client_ca is None or peer.certificate is not None:
            return peer
        return dataclasses.replace(peer, certificate=own.certificate, private_key=own.private_key)

    @property
    def engine(self) -> EngineService:
        """The running engine, for an embedding process (the operator) to drive."""
        if self._engine is None:
            raise RuntimeError("the engine server is not started")
        return self._engine

    @property
    def schedules(self) -> ScheduleService:
        """The running schedule service: the door to schedules for an embedding process (the operator)."""
        if self._schedules is None:
            raise RuntimeError("the engine server is not started")
        return self._schedules

    async def stop(self, grace_s: float = 2.0) -> None:
        if self._health is not None:
            # First, so a probe or a load balancer watching health stops sending before the port closes.
            await self._health.enter_graceful_shutdown()
        if self._web is not None:
            await self._web.stop()
            self._web = None
        if self._server is not None:
            try:
                await self._server.stop(grace_s)
            except asyncio.CancelledError:
                # grpc's stop can raise this from a long-poll it cancels; only a cancel of this
                # very task may stop us from closing the dispatcher, the timers and the store.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                log.debug("grpc server stop raised CancelledError; continuing the shutdown")
        if self._following is not None:
            self._following.cancel()
            await asyncio.gather(self._following, return_exceptions=True)
        if self._router is not None:
            await self._router.close()
        if self._balancer is not None:
            try:
                await self._balancer.stop()  # its shards handed over, drained: the others take them at once
            except Exception as error:
                log.warning("handing the shards over failed (%r): the others take them when the session ends", error)
        if self._retention is not None:
            await self._retention.stop()
        if self._schedules is not None:
            await self._schedules.stop()
        if self._relay is not None:
            await self._relay.stop()
        if self._timers is not None:
            await self._timers.stop()
        if self._dispatcher is not None:
            await self._dispatcher.stop()
        if self._flow is not None:
            await self._flow.stop()
        if self._db is not None:
            self._db.close()

    async def serve_until_signalled(self) -> None:
        await self.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        log.info("stopping")
        await self.stop()


# CPython's default (700, 10, 10) runs the cyclic collector's youngest generation every 700 net
# allocations: several times per step (a step allocates requests, events, states, futures), about 5-10 %
# of the engine's CPU under load in a py-spy profile (bench/analysis.md). The engine's per-step objects
# are freed by reference counting; the collector is only for cycles, which 50,000 still bounds. The older
# generations less often too: a full collection walks every live object (a million sleeping executions'
# states), and at (10,000, 10, 10) the collector was still 4 % of a loaded engine's samples. Measured,
# three interleaved 2,000x10 runs a side: 1,555, 1,582, 1,572 -> 1,632, 1,640, 1,690 steps/s; a
# larger (200,000, 50, 1,000) was no faster.
GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """For a serving process, once its imports are done: what exists now (modules, classes, compiled
    statements) is frozen out of every later collection, and the young generation is collected less
    often (`GC_THRESHOLD`)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def raise_descriptor_limit() -> int:
    """Raise the soft open-file limit to the hard one (each connection is a descriptor); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20  # Linux refuses an infinite NOFILE; macOS's kernel caps it lower anyway
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, error)
            return int(soft)
        return int(hard)
    return int(hard if soft == resource.RLIM_INFINITY else soft)


def _why_not_listening(address: str) -> tuple[str, bool]:
    """The operating system's reason a TCP address cannot be bound (grpcio gives none), and whether it is in use."""
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    unknown = ("the address is in use or not valid", False)
    if address.startswith(("unix:", "unix-abstract:")) or not port.isdigit():
        return unknown
    try:
        infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError, OverflowError) as error:
        return f"the host or port is not valid ({error})", False
    for family, kind, proto, _name, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: TIME_WAIT is no conflict
                probe.bind(sockaddr)
        except OSError as error:
            reason = error.strerror or str(error)
            return reason[:1].lower() + reason[1:], error.errno == errno.EADDRINUSE
    return unknown


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _peer_channel(address: str, *, peer_tls: PeerTls | None, options: list[tuple[str, int]]) -> grpc.aio.Channel:
    """A channel to another replica: over TLS when they serve it, checked as `peer_tls` says."""
    if peer_tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, peer_tls.credentials(), options=[*options, *peer_tls.options()])


def commits_without_syncing(database_url: str) -> bool:
    """Whether a commit is a write to the page cache (a SQLite file, WAL, `synchronous` NORMAL or OFF),
    so that an append finding the store idle may commit on the event loop (`Database.inline_commits`).
    PostgreSQL commits over the network and `synchronous=FULL` syncs each commit: never on the loop."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return False
    return str(url.query.get("synchronous", "NORMAL")).upper() in ("NORMAL", "OFF")
