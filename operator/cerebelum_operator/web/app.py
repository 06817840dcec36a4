"""The web UI's application: routes, the caller on every request, security headers, rendering.

Pages are rendered on the server from Jinja templates that escape every value (user text is
never markup); one small script (``static/app.js``) follows server-sent change notices and
swaps in fresh fragments. Nothing reads the store but through the engine service.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from ipaddress import ip_address
from typing import Any

import jinja2
from aiohttp import web

from ..api.auth import AuthUnavailable, PermissionDenied, Unauthenticated
from ..runtime import Clock, EngineService, ScheduleService
from ..runtime.flow_control import FlowControlService
from ..store import ExecutionQuery
from . import format as fmt
from .errors import status_of
from .history_cache import HistoryCache
from .live import ChangeFeed
from .session import Sessions, Viewer

__all__ = ["WebServices", "create_app"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICES: web.AppKey[WebServices] = web.AppKey("services")
VIEWER = "cerebelum.viewer"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Answered without a caller: a probe has no token.
OPEN_PATHS = frozenset({"/healthz", "/login"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(kw_only=True)
class WebServices:
    """What the pages read and act through: the engine's own services, never the store."""

    engine: EngineService
    sessions: Sessions
    clock: Clock
    feed: ChangeFeed
    flow_control: FlowControlService | None = None
    schedules: ScheduleService | None = None
    loopback_only: bool = False  # served on a loopback address: refuse other Host names (DNS rebinding)
    templates: jinja2.Environment = field(init=False)
    histories: HistoryCache = field(init=False)
    counts: dict[ExecutionQuery, tuple[int, dict[str, int]]] = field(init=False, default_factory=dict)
    static_version: str = field(init=False)

    def __post_init__(self) -> None:
        self.histories = HistoryCache(self.engine)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("cerebelum_operator.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(fmt.FILTERS)
        digest = hashlib.sha256()
        for name in ("app.js", "app.css"):
            digest.update(static_file(name))
        self.static_version = digest.hexdigest()[:12]

    def render(self, request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
        viewer: Viewer | None = request.get(VIEWER)
        body = self.templates.get_template(template).render(
            viewer=viewer,
            login_required=self.sessions.required,
            static_version=self.static_version,
            path=request.path,
            now_ms=self.clock.now_ms(),
            **values,
        )
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def static_file(name: str) -> bytes:
    return resources.files("cerebelum_operator.web").joinpath("static", name).read_bytes()


def services_of(request: web.Request) -> WebServices:
    return request.app[SERVICES]


def viewer_of(request: web.Request) -> Viewer:
    viewer: Viewer = request[VIEWER]
    return viewer


@web.middleware
async def guard_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host check, the caller, errors as pages, and the security headers on every answer."""
    services = services_of(request)
    try:
        if services.loopback_only and _host_name(request.host) not in LOOPBACK_NAMES:
            raise web.HTTPMisdirectedRequest(text=f"this engine serves its UI to loopback names, not {request.host!r}")
        if request.path not in OPEN_PATHS and not request.path.startswith("/static/"):
            request[VIEWER] = await services.sessions.viewer(request)
        response = await handler(request)
    except Unauthenticated as error:
        response = _unauthenticated(request, str(error))
    except web.HTTPException as error:
        response = error
        if error.status >= 400 and "text/html" in request.headers.get("Accept", ""):
            response = services.render(request, "error.html", status=error.status, message=error.text or error.reason)
    except (PermissionDenied, AuthUnavailable) as error:
        response = _error_page(request, error)
    except Exception as error:
        if status_of(error) is None:
            log.exception("web UI: %s %s failed", request.method, request.path)
        response = _error_page(request, error)
    if not response.prepared:
        _secure(response, tls=services.sessions.secure_cookie)
    return response


def _host_name(host: str | None) -> str:
    name = (host or "").rsplit(":", 1)[0] if not (host or "").startswith("[") else (host or "").split("]")[0] + "]"
    try:
        return str(ip_address(name.strip("[]"))) if name.strip("[]") else ""
    except ValueError:
        return name.lower()


def _unauthenticated(request: web.Request, message: str) -> web.StreamResponse:
    if request.method == "GET" and "text/html" in request.headers.get("Accept", "text/html"):
        target = request.path_qs if request.path != "/" else "/executions"
        raise web.HTTPSeeOther(f"/login?next={fmt.quote(target)}")
    return web.json_response({"error": message}, status=401, headers={"WWW-Authenticate": "Bearer"})


def _error_page(request: web.Request, error: BaseException) -> web.Response:
    status = status_of(error) or 500
    message = str(error) if status != 500 else f"internal error: {type(error).__name__}"
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"error": message}, status=status)
    return services_of(request).render(request, "error.html", status=status, message=message)


def _secure(response: web.StreamResponse, *, tls: bool) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on its own forms.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")
    if tls:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def create_app(services: WebServices) -> web.Application:
    from . import actions, pages

    app = web.Application(middlewares=[guard_requests], client_max_size=2 * 1024 * 1024)
    app[SERVICES] = services
    pages.add_routes(app)
    actions.add_routes(app)
    return app
