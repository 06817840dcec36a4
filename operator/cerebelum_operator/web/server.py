"""The UI's own HTTP listener beside the gRPC port, started and stopped with the engine."""

from __future__ import annotations

import logging
import ssl
from ipaddress import ip_address

from aiohttp import web

from .app import WebServices, create_app

__all__ = ["WebServer", "is_loopback"]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"the UI address {address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class WebServer:
    def __init__(self, services: WebServices, *, address: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.services = services
        self.address = address
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        host, port = split_address(self.address)
        self.services.loopback_only = is_loopback(host)
        runner = self._runner = web.AppRunner(create_app(self.services), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self.ssl_context, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            self._runner = None
            raise OSError(f"cannot serve the UI on {self.address}: {error.strerror or error}") from error
        bound = runner.addresses
        self.port = int(bound[0][1]) if bound else port
        scheme = "https" if self.ssl_context else "http"
        log.info("cerebelum UI on %s://%s:%d/", scheme, host if ":" not in host else f"[{host}]", self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
