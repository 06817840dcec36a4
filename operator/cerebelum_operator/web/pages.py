"""The pages: executions (list and one), workflows, dead letters, schedules; sign-in; live notices."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..engine import events as ev
from ..engine.events import RecordedEvent
from ..engine.state import ExecutionPhase
from ..model import WorkflowInvalid, compile_workflow
from ..runtime import WorkflowNotFound
from ..store import ExecutionQuery, PageCursor
from . import format as fmt
from .app import WebServices, services_of, static_file, viewer_of
from .graph import Graph, layout, layout_reached
from .live import FeedFull
from .timeline import timeline

__all__ = ["add_routes"]

PAGE_SIZE = 50
COUNTS_FOR_MS = 1000
HISTORY_PAGE = 100
MAX_FILTER_TEXT = 128
MAX_LABEL_FILTERS = 8
STREAM_INTERVAL_S = 1.0  # at most one change notice a second per page
STREAM_KEEPALIVE_S = 15.0
PHASES = [phase.value for phase in ExecutionPhase]
_STATIC_TYPES = {"app.js": "text/javascript", "app.css": "text/css"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/login", login_page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/executions", executions)
    app.router.add_get("/executions/{id}", execution)
    app.router.add_get("/executions/{id}/history", history)
    app.router.add_get("/workflows", workflows)
    app.router.add_get("/workflows/{name}", workflow)
    app.router.add_get("/dead-letters", dead_letters)
    app.router.add_get("/schedules", schedules)
    app.router.add_get("/events", changes)


async def home(_request: web.Request) -> web.StreamResponse:
    """`/` is the executions list (an async handler: aiohttp deprecates plain functions)."""
    raise web.HTTPFound("/executions")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC_TYPES:
        raise web.HTTPNotFound()
    return web.Response(
        body=static_file(name),
        content_type=_STATIC_TYPES[name],
        headers={"Cache-Control": "public, max-age=31536000, immutable"},  # the URL carries a digest
    )


async def login_page(request: web.Request) -> web.Response:
    services = services_of(request)
    if not services.sessions.required:
        raise web.HTTPFound("/executions")
    return services.render(request, "login.html", next=_local(request.query.get("next", "")), error="")


def _local(target: str) -> str:
    """A same-site path to go to after signing in; anything else goes to the list."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/executions"


# -- executions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListFilter:
    workflow: str
    phases: tuple[str, ...]
    labels: tuple[str, ...]  # "key=value"
    text: str
    since: str
    until: str

    @classmethod
    def of(cls, request: web.Request) -> ListFilter:
        query = request.query
        return cls(
            workflow=query.get("workflow", "")[:MAX_FILTER_TEXT],
            phases=tuple(p for p in query.getall("phase", []) if p in PHASES),
            labels=tuple(label[:MAX_FILTER_TEXT] for label in query.getall("label", []) if label)[:MAX_LABEL_FILTERS],
            text=query.get("q", "")[:MAX_FILTER_TEXT],
            since=query.get("since", "")[:40],
            until=query.get("until", "")[:40],
        )

    def to_query(self) -> ExecutionQuery:
        labels: list[tuple[str, str]] = []
        for label in self.labels:
            key, equals, value = label.partition("=")
            if not equals or not key:
                raise web.HTTPBadRequest(text=f"label filter {label!r}: write key=value")
            labels.append((key.strip(), value.strip()))
        try:
            since, until = fmt.parse_time(self.since), fmt.parse_time(self.until)
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        return ExecutionQuery(
            workflow=self.workflow or None,
            phases=self.phases,
            labels=tuple(labels),
            created_from_ms=since,
            created_to_ms=until,
            id_contains=self.text or None,
        )

    def params(self, **changes: Any) -> str:
        values: dict[str, Any] = {
            "workflow": self.workflow,
            "phase": list(self.phases),
            "label": list(self.labels),
            "q": self.text,
            "since": self.since,
            "until": self.until,
        }
        values.update(changes)
        return fmt.query_string(values)

    def toggled(self, phase: str) -> str:
        phases = [p for p in self.phases if p != phase] if phase in self.phases else [*self.phases, phase]
        return self.params(phase=phases)


async def executions(request: web.Request) -> web.Response:
    services = services_of(request)
    # Taken before reading: a change that lands while the page is read is told to it again.
    seen = services.feed.version
    engine = services.engine
    chosen = ListFilter.of(request)
    query = chosen.to_query()
    after = None
    if token := request.query.get("after", ""):
        try:
            after = PageCursor.decode(token)
        except ValueError:
            raise web.HTTPBadRequest(text="the page link is not valid; start from the first page") from None
    page, counts = await asyncio.gather(
        engine.list_executions_page(query, after=after, limit=PAGE_SIZE), _counts(services, query)
    )
    labels = await engine.labels_of([row.execution_id for row in page.rows])
    values: dict[str, Any] = {
        "filter": chosen,
        "rows": page.rows,
        "labels": labels,
        "next_token": page.next.encode() if page.next else "",
        "first_page": after is None,
        "counts": [(phase, counts.get(phase, 0)) for phase in PHASES],
        "total": sum(counts.values()),
        "phases": PHASES,
        "workflows": [row.name for row in await engine.list_workflows()],
        "feed_version": seen,
    }
    template = "executions_results.html" if request.query.get("fragment") == "results" else "executions.html"
    return services.render(request, template, **values)


async def _counts(services: WebServices, query: ExecutionQuery) -> dict[str, int]:
    """Counts by phase, shared by every page that asks within a second: counting 100,000 rows
    (about 13 ms on SQLite) once per open list and per refresh would add up with many viewers."""
    now = services.clock.now_ms()
    cached = services.counts.get(query)
    if cached is not None and now - cached[0] < COUNTS_FOR_MS:
        return cached[1]
    counts = await services.engine.count_executions(query)
    services.counts[query] = (now, counts)
    while len(services.counts) > 64:
        services.counts.pop(next(iter(services.counts)))
    return counts


async def _execution_parts(services: WebServices, execution_id: str) -> dict[str, Any]:
    engine = services.engine
    row = await engine.get_execution(execution_id)
    if row is None:
        raise await engine.missing(execution_id)
    state = await engine.state_of(execution_id)
    history = await services.histories.history(execution_id, last_seq=row.last_seq)
    now = services.clock.now_ms()
    jumps = Counter((e.event.from_step, e.event.to_step) for e in history if isinstance(e.event, ev.JumpTaken))
    phases = {name: step.phase.value for name, step in state.steps.items()}
    graph = _graph_of(services, row.spec, phases, jumps)
    labels = (await engine.labels_of([execution_id])).get(execution_id, {})
    return {
        "row": row,
        "state": state,
        "live": engine.live_steps(state),
        "graph": graph,
        "timeline": timeline(history, now_ms=now),
        "labels": labels,
        "failure": _failure(history),
        "terminal": state.phase.terminal,
        "dead_letters": await engine.list_dead_letters(execution_id=execution_id),
    }


def _graph_of(
    services: WebServices,
    spec: dict[str, Any],
    phases: dict[str, str],
    jumps: Counter[tuple[str, str]],
) -> Graph:
    definition = services.engine.definition_for(spec, started=True)
    if definition.code is not None:
        return layout_reached(phases.items())
    return layout(definition, phases=phases, jumps_taken=jumps)


def _failure(history: list[RecordedEvent]) -> dict[str, str] | None:
    """The last step failure's error and stack trace, for the page's error panel."""
    for recorded in reversed(history):
        event = recorded.event
        if isinstance(event, ev.StepFailed):
            return {
                "step": event.step,
                "attempt": str(event.attempt),
                "error_type": event.error_type,
                "message": event.message,
                "stacktrace": event.stacktrace,
                "at": fmt.rfc3339(recorded.at_ms),
            }
    return None


async def execution(request: web.Request) -> web.Response:
    services = services_of(request)
    seen = services.feed.version  # before reading (see `executions`)
    execution_id = request.match_info["id"]
    parts = await _execution_parts(services, execution_id)
    if request.query.get("fragment") == "live":
        return services.render(request, "execution_live.html", **parts)
    events, first, last = await _history_page(services, execution_id, parts["row"].last_seq, request)
    return services.render(
        request,
        "execution.html",
        events=events,
        history_first=first,
        history_last=last,
        history_page=HISTORY_PAGE,
        feed_version=seen,
        **parts,
    )


async def _history_page(
    services: WebServices, execution_id: str, last_seq: int, request: web.Request
) -> tuple[list[dict[str, Any]], int, int]:
    after = _int(request.query.get("after"), default=0, low=0, high=last_seq)
    recorded = await services.engine.load_history(execution_id, after_seq=after, limit=HISTORY_PAGE)
    events = [
        {
            "seq": e.seq,
            "at": fmt.rfc3339(e.at_ms),
            "type": e.event.kind,
            "summary": _summary(e.event),
            "data": fmt.pretty_json(e.event.to_data()),
        }
        for e in recorded
    ]
    return events, after, last_seq


def _summary(event: ev.Event) -> str:
    """A one-line gist of an event for the history table; the whole event is one click away."""
    data = event.to_data()
    parts = [
        f"{key}={data[key]}" for key in ("step", "attempt", "approver", "name", "to_step", "reason") if key in data
    ]
    if "error_type" in data:
        parts.append(f"{data['error_type']}: {str(data.get('message', ''))[:120]}")
    return ", ".join(str(part) for part in parts)


def _int(text: str | None, *, default: int, low: int, high: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        raise web.HTTPBadRequest(text=f"{text!r} is not a number") from None
    return max(low, min(high, value))


async def history(request: web.Request) -> web.Response:
    services = services_of(request)
    execution_id = request.match_info["id"]
    row = await services.engine.get_execution(execution_id)
    if row is None:
        raise await services.engine.missing(execution_id)
    events, first, last = await _history_page(services, execution_id, row.last_seq, request)
    return services.render(
        request,
        "history_rows.html",
        row=row,
        events=events,
        history_first=first,
        history_last=last,
        history_page=HISTORY_PAGE,
    )


# -- workflows, dead letters, schedules -------------------------------------------------------


async def workflows(request: web.Request) -> web.Response:
    services = services_of(request)
    rows = await services.engine.list_workflows()
    listed = []
    for row in rows:
        problems = _problems(row.spec)
        pause = services.flow_control.pause_of(row.name) if services.flow_control else None
        listed.append({"row": row, "problems": problems, "pause": pause})
    return services.render(request, "workflows.html", workflows=listed)


def _problems(spec: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(spec)
    except WorkflowInvalid as error:
        return [str(problem) for problem in getattr(error, "problems", [])] or [str(error)]
    return []


async def workflow(request: web.Request) -> web.Response:
    services = services_of(request)
    name = request.match_info["name"]
    row = await services.engine.get_workflow(name)
    if row is None:
        raise WorkflowNotFound(f"workflow {name!r} not found")
    problems = _problems(row.spec)
    graph = None
    if not problems:
        definition = services.engine.definition_for(row.spec)
        graph = None if definition.code is not None else layout(definition)
    pause = services.flow_control.pause_of(name) if services.flow_control else None
    return services.render(
        request,
        "workflow.html",
        row=row,
        problems=problems,
        graph=graph,
        pause=pause,
        spec=json.dumps(row.spec, indent=2, sort_keys=True),
    )


async def dead_letters(request: web.Request) -> web.Response:
    services = services_of(request)
    rows = await services.engine.list_dead_letters()
    return services.render(request, "dead_letters.html", dead_letters=rows)


async def schedules(request: web.Request) -> web.Response:
    services = services_of(request)
    viewer = viewer_of(request)
    if services.schedules is None:
        raise web.HTTPNotFound(text="this engine runs no schedules")
    may_manage = any(
        rule.schedules and rule.applies_to(viewer.identity) for rule in services.sessions.guard.policy.clients
    )
    views = await services.schedules.list() if may_manage else []
    return services.render(request, "schedules.html", schedules=views, may_manage=may_manage)


# -- live notices ----------------------------------------------------------------------------


async def changes(request: web.Request) -> web.StreamResponse:
    """Server-sent events: "changed" when what the page shows may have changed, at most once a second."""
    services = services_of(request)
    execution_id = request.query.get("execution", "")[:256] or None
    feed = services.feed
    try:
        feed.open_stream()
    except FeedFull as error:
        raise web.HTTPServiceUnavailable(text=str(error)) from None
    try:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        seen = _int(request.query.get("since"), default=feed.version, low=0, high=feed.version)
        await response.write(b"retry: 3000\n\n")
        while True:
            version = await feed.wait_past(seen, timeout_s=STREAM_KEEPALIVE_S)
            relevant = version > seen and (execution_id is None or feed.version_of(execution_id) > seen)
            if relevant:
                await response.write(f"event: changed\ndata: {version}\n\n".encode())
                await services.clock.sleep(STREAM_INTERVAL_S)
            elif version == seen:
                await response.write(b": keepalive\n\n")
            seen = version
    except ConnectionResetError:  # the page went away (aiohttp's ClientConnectionResetError is one)
        pass
    finally:
        feed.close_stream()
    return response
