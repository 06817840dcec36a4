"""Liveness and readiness over HTTP, served from the first moment, before the Lease is ours.

`/healthz` answers 200 while the process runs (a standby waiting for the Lease is healthy).
`/readyz` answers 200 on the leader once its engine serves and it has caught up (`catch_up`:
every Execution not labelled finished handled once and its status projected), so a ready leader
shows current status. On a standby it depends on how the Service in front of the replicas finds
the leader:

- with pod role labels (`--pod-role-label`, as the chart runs it) the Service selects the pod
  labelled `cerebelum.io/role: leader` (`kube/pod_role.py`), so readiness only says "this
  replica is healthy": a standby that has labelled itself `standby` is Ready (200, role
  standby). Rollouts, `helm --wait` and the PodDisruptionBudget then count it as available;
- without them readiness is what routes: only the leader is Ready (a standby answers 503), or
  the Service would send workers to an instance that does not dispatch.

`/metrics` is Prometheus text.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .metrics import OperatorMetrics

__all__ = ["HealthServer"]


class HealthServer:
    def __init__(self, address: str, *, metrics: OperatorMetrics | None = None, standby_ready: bool = False) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or "0.0.0.0"
        self.port = int(port)
        # Whether a standby may be Ready at all: only when something other than readiness (the
        # pod role label) keeps workers away from it.
        self.standby_ready = standby_ready
        # The current role is in place: the standby label written, or the leader's engine serving.
        self.ready = False
        self.role = "standby"
        self.metrics = metrics
        # The leader's own readiness condition beyond `ready` (None: none): caught up.
        self.caught_up: Callable[[], bool] | None = None
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

    def is_ready(self) -> bool:
        if self.role == "leader":
            return self.ready and (self.caught_up is None or self.caught_up())
        return self.ready and self.standby_ready

    async def _readyz(self, request: web.Request) -> web.Response:
        ready = self.is_ready()
        return web.json_response({"ready": ready, "role": self.role}, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render() if self.metrics is not None else b""
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
