"""What a page can do: sign in and out, approve, reject, signal, cancel, pause, resume, redrive.

Each action is a form POST checked by `Sessions.check_form` (origin, form token, the caller's
right to act), bounded as the gRPC API bounds the same field, done through the engine service as
the API does it, and answered with a redirect back to the page (post/redirect/get). The approver
and the actor recorded are the authenticated caller, never a name the form claims; without
authentication (a laptop's `cerebelum dev`) the form asks for a name, as the CLI does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from ..api.auth import Unauthenticated
from ..api.errors import InvalidRequest
from ..api.limits import DEFAULT_TEXT_LIMIT, TEXT_LIMITS
from ..api.payloads import parse_json
from ..engine import commands as cmd
from ..engine.pause import MAX_PAUSE_REASON
from ..runtime import ExecutionNotFound, WorkflowNotFound
from . import format as fmt
from .app import services_of, viewer_of
from .pages import _local
from .session import MAX_TOKEN, Viewer

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/login", sign_in)
    app.router.add_post("/logout", sign_out)
    for action in ("approve", "reject", "signal", "cancel", "pause", "resume"):
        app.router.add_post(f"/executions/{{id}}/{action}", execution_action)
    # A dead letter's id (a task token) and a schedule's key ("namespace/name") hold slashes.
    app.router.add_post("/dead-letters/{id:.+}/redrive", redrive)
    app.router.add_post("/workflows/{name}/{action:pause|resume}", workflow_action)
    app.router.add_post("/schedules/{key:.+}/{action:pause|resume|trigger}", schedule_action)


async def sign_in(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    form = await request.post()
    token = str(form.get("token", "")).strip()
    target = _local(str(form.get("next", "")))
    if not services.sessions.required:
        raise web.HTTPSeeOther(target)
    error = ""
    if not token:
        error = "enter a token"
    elif len(token) > MAX_TOKEN:
        error = "that token is too long"
    else:
        try:
            identity = await services.sessions.check_token(token)
        except Unauthenticated as refused:
            error = str(refused)
        else:
            if services.sessions.guard.policy.client_access(identity) is None:
                error = f"{identity.username!r} may not use the UI (access policy 'clients')"
    if error:
        return services.render(request, "login.html", status=401, next=target, error=error)
    response = web.HTTPSeeOther(target)
    services.sessions.sign_in(response, token)
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    form = await request.post()
    services.sessions.check_form(request, viewer_of(request), str(form.get("csrf", "")))
    response = web.HTTPSeeOther("/login" if services.sessions.required else "/executions")
    services.sessions.sign_out(response)
    return response


def _text(form: MultiDictProxy[Any], name: str, *, required: bool = False, limit: int | None = None) -> str:
    value = str(form.get(name, "")).strip()
    bound = limit if limit is not None else TEXT_LIMITS.get(name) or DEFAULT_TEXT_LIMIT
    if len(value) > bound:
        raise InvalidRequest(f"{name} is {len(value)} characters, over its limit of {bound}")
    if required and not value:
        raise InvalidRequest(f"{name} is required")
    return value


async def _checked_form(request: web.Request) -> tuple[MultiDictProxy[Any], Viewer]:
    form = await request.post()
    viewer = viewer_of(request)
    services_of(request).sessions.check_form(request, viewer, str(form.get("csrf", "")))
    return form, viewer


def _actor(viewer: Viewer, form: MultiDictProxy[Any], what: str) -> str:
    """The name to record: the authenticated caller's; without authentication, the one the form gives."""
    if viewer.records_name:
        return viewer.name
    return _text(form, "approver", required=what == "approval", limit=TEXT_LIMITS["approver"])


async def execution_action(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    engine = services.engine
    execution_id = request.match_info["id"]
    action = request.path.rsplit("/", 1)[1]
    form, viewer = await _checked_form(request)
    if await engine.get_execution(execution_id) is None:
        raise await engine.missing(execution_id)
    limit = engine.max_payload_bytes
    anchor = ""
    if action == "approve":
        payload = parse_json(_text(form, "payload", limit=limit), what="approval payload", limit=limit)
        step = _text(form, "step", required=True)
        await engine.handle(execution_id, cmd.Approve(step, _actor(viewer, form, "approval"), payload))
        anchor = "#steps"
    elif action == "reject":
        step = _text(form, "step", required=True)
        reason = _text(form, "reason")
        await engine.handle(execution_id, cmd.Reject(step, _actor(viewer, form, "approval"), reason))
        anchor = "#steps"
    elif action == "signal":
        name = _text(form, "name", required=True)
        data = parse_json(_text(form, "data", limit=limit), what="signal data", limit=limit)
        await engine.signal(execution_id, cmd.Signal(name, data, sender=viewer.name))
    elif action == "cancel":
        await engine.handle(execution_id, cmd.Cancel(_text(form, "reason") or f"cancelled by {viewer.name}"))
    elif action == "pause":
        reason = _text(form, "reason", limit=MAX_PAUSE_REASON)
        await engine.handle(execution_id, cmd.Pause(reason, _recorded(viewer)))
    else:
        await engine.handle(execution_id, cmd.Resume(_recorded(viewer)))
    raise web.HTTPSeeOther(f"/executions/{fmt.quote(execution_id)}{anchor}")


def _recorded(viewer: Viewer) -> str:
    """Who paused or resumed, as the API records it: the authenticated caller, "" without a token."""
    return viewer.name if viewer.records_name else ""


async def redrive(request: web.Request) -> web.StreamResponse:
    engine = services_of(request).engine
    form, _ = await _checked_form(request)
    row = await engine.get_dead_letter(request.match_info["id"])
    if row is None or row.resolved_at_ms is not None:
        raise ExecutionNotFound(f"dead letter {request.match_info['id']!r} not found (or already redriven)")
    await engine.redrive(row.execution_id, row.dead_letter_id, with_current_workflow=bool(form.get("current")))
    raise web.HTTPSeeOther(f"/executions/{fmt.quote(row.execution_id)}")


async def workflow_action(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    form, viewer = await _checked_form(request)
    name = request.match_info["name"]
    if await services.engine.get_workflow(name) is None:
        raise WorkflowNotFound(f"workflow {name!r} not found")
    if services.flow_control is None:
        raise InvalidRequest("this engine does not pause workflows")
    if request.match_info["action"] == "pause":
        reason = _text(form, "reason", limit=MAX_PAUSE_REASON) or f"workflow {name!r} is paused"
        await services.flow_control.pause_workflow(name, reason=reason, by=_recorded(viewer))
    else:
        await services.flow_control.resume_workflow(name, by=_recorded(viewer))
    raise web.HTTPSeeOther(f"/workflows/{fmt.quote(name)}")


async def schedule_action(request: web.Request) -> web.StreamResponse:
    services = services_of(request)
    form, viewer = await _checked_form(request)
    if services.schedules is None:
        raise web.HTTPNotFound(text="this engine runs no schedules")
    services.sessions.guard.policy.check_schedules(viewer.identity, "the UI's schedule actions")
    key = request.match_info["key"]
    action = request.match_info["action"]
    if action == "pause":
        await services.schedules.pause(key, note=_text(form, "note"))
    elif action == "resume":
        await services.schedules.resume(key)
    else:
        await services.schedules.trigger(key)
    raise web.HTTPSeeOther("/schedules")
