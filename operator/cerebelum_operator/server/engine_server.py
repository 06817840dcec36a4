"""One process: store, engine, dispatcher, timers and the gRPC endpoint.

`cerebelum dev` runs this on SQLite; the operator (Kubernetes) embeds the same pieces.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from cerebelum.v1 import worker_pb2, workflow_pb2

from ..api import DEFAULT_MAX_PAYLOAD_BYTES, Guard, WorkerServicer, WorkflowServicer
from ..engine import DEFAULT_MAX_HISTORY_EVENTS
from ..runtime import Clock, Database, Dispatcher, EngineService, SystemClock, TimerService
from ..store import open_store
from .handlers import strict_service_handler

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_DATABASE_URL", "EngineServer", "ServerConfig", "TlsFiles"]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:7450"
DEFAULT_DATABASE_URL = "sqlite:///.cerebelum/dev.db"


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """PEM files for the gRPC endpoint; with ``client_ca`` clients must present a certificate too."""

    certificate: Path
    private_key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        try:
            pair = (self.private_key.read_bytes(), self.certificate.read_bytes())
            client_ca = self.client_ca.read_bytes() if self.client_ca is not None else None
        except OSError as exc:
            raise OSError(f"cannot read the TLS files: {exc}") from None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
        )


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    address: str = DEFAULT_ADDRESS
    database_url: str = DEFAULT_DATABASE_URL
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    sticky_window_ms: int = 100
    max_poll_wait_ms: int = 30_000
    max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS
    tls: TlsFiles | None = None
    guard: Guard = field(default_factory=Guard)


class EngineServer:
    def __init__(self, config: ServerConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._server: grpc.aio.Server | None = None
        self._db: Database | None = None
        self._engine: EngineService | None = None
        self._dispatcher: Dispatcher | None = None
        self._timers: TimerService | None = None
        self.port = 0

    async def start(self) -> None:
        store = open_store(self.config.database_url)
        version = store.migrate()
        db = self._db = Database(store)
        engine = self._engine = EngineService(db, clock=self.clock, max_history_events=self.config.max_history_events)
        self._dispatcher = Dispatcher(
            db,
            engine,
            clock=self.clock,
            sticky_window_ms=self.config.sticky_window_ms,
            max_poll_wait_ms=self.config.max_poll_wait_ms,
        )
        self._timers = TimerService(db, engine, clock=self.clock)
        await self._dispatcher.start()
        await self._timers.start()
        message_limit = 2 * self.config.max_payload_bytes + 1024 * 1024
        server = self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
                ("grpc.so_reuseport", 0),
            ]
        )
        guard = self.config.guard
        worker = WorkerServicer(engine, self._dispatcher, max_payload_bytes=self.config.max_payload_bytes, guard=guard)
        workflows = WorkflowServicer(engine, max_payload_bytes=self.config.max_payload_bytes, guard=guard)
        server.add_generic_rpc_handlers(
            (
                strict_service_handler(worker, worker_pb2.DESCRIPTOR.services_by_name["WorkerService"]),
                strict_service_handler(workflows, workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"]),
            )
        )
        if self.config.tls is not None:
            self.port = server.add_secure_port(self.config.address, self.config.tls.credentials())
        else:
            self.port = server.add_insecure_port(self.config.address)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.config.address}: address in use or not valid")
        await server.start()
        log.info(
            "cerebelum engine serving on %s (%s, %s; store %s, schema v%d)",
            self.config.address,
            "TLS" if self.config.tls is not None else "plaintext",
            "callers authenticated" if guard.enabled else "no authentication",
            _redact(self.config.database_url),
            version,
        )

    @property
    def engine(self) -> EngineService:
        """The running engine, for an embedding process (the operator) to drive."""
        if self._engine is None:
            raise RuntimeError("the engine server is not started")
        return self._engine

    async def stop(self, grace_s: float = 2.0) -> None:
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
        if self._timers is not None:
            await self._timers.stop()
        if self._dispatcher is not None:
            await self._dispatcher.stop()
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


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
