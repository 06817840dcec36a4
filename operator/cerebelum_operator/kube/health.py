"""Liveness and readiness over HTTP, served from the first moment, before the Lease is ours.

`/healthz` answers 200 while the process runs (a standby waiting for the Lease is healthy).
`/readyz` answers 200 only on the leader with its engine serving, so a Service in front of the
replicas sends workers to the one instance that dispatches. `/metrics` is Prometheus text.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .metrics import OperatorMetrics

__all__ = ["HealthServer"]


class HealthServer:
    def __init__(self, address: str, *, metrics: OperatorMetrics | None = None) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or "0.0.0.0"
        self.port = int(port)
        self.ready = False
        self.role = "standby"
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": self.role})

    async def _readyz(self, request: web.Request) -> web.Response:
        return web.json_response({"ready": self.ready, "role": self.role}, status=200 if self.ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render() if self.metrics is not None else b""
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
