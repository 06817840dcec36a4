"""gRPC method handlers that decode requests themselves, and send on calls for another replica's shard.

grpcio answers an undecodable request with INTERNAL; a client sending bad bytes
deserves INVALID_ARGUMENT naming the message type, and the server must go on serving.
With a `Router` (scale-out), a call about an execution of a shard another replica owns goes
there, as it came (see `routing`), and a setting every replica applies goes to each of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError

from cerebelum.v1 import worker_pb2, workflow_pb2

from ..api.limits import MAX_REPORTS_PER_CALL
from ..store import StoreUnavailable
from .queue_totals import added_up
from .routing import (
    BROADCAST,
    BULK_EXECUTIONS,
    COMPLETE_TASK,
    COMPLETE_TASKS,
    FORWARDED_HEADER,
    LIST_TASK_QUEUES,
    START_EXECUTION,
    Router,
    ShardUnowned,
    Target,
    report_target,
    target_of,
)
from .work_stream import DEFAULT_CALLS_PER_STREAM, WORK, Serve, WorkStreams

__all__ = ["strict_service_handler"]

log = logging.getLogger(__name__)

_Implementation = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def strict_service_handler(
    servicer: Any,
    service: ServiceDescriptor,
    *,
    router: Router | None = None,
    max_calls_per_stream: int = DEFAULT_CALLS_PER_STREAM,
) -> grpc.GenericRpcHandler[Any, Any]:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    serving: dict[str, Serve] = {}
    streams: list[str] = []
    for method in service.methods:
        if method.client_streaming:  # Work: served below, by the unary methods it carries
            streams.append(method.name)
            continue
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        path = f"/{service.full_name}/{method.name}"
        serve = serving[method.name] = _serving(getattr(servicer, method.name), response_class, path, router)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _decoding(serve, request_class),
            request_deserializer=None,
            response_serializer=response_class.SerializeToString,
        )
    for name in streams:
        if name != WORK:
            raise ValueError(f"{service.full_name}.{name}: no handler for this streaming method")
        work = WorkStreams(
            poll_task=serving["PollTask"], complete_tasks=serving["CompleteTasks"], max_calls=max_calls_per_stream
        )
        handlers[name] = grpc.stream_stream_rpc_method_handler(
            work.serve, request_deserializer=None, response_serializer=worker_pb2.WorkAnswer.SerializeToString
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _decoding(
    serve: Serve, request_class: Any
) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def handler(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = request_class.FromString(raw)
        except DecodeError as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request is not a valid {request_class.DESCRIPTOR.full_name}: {exc}",
            )
        return await serve(request, raw, context)

    return handler


def _serving(implementation: _Implementation, response_class: Any, path: str, router: Router | None) -> Serve:
    """The method on a decoded request (`raw`: its bytes as they came, None when it came in a `Work` stream)."""

    async def serve(request: Any, raw: bytes | None, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if router is not None and router.owned() is not None and not _forwarded(context):
            if path == START_EXECUTION and not request.execution_id:
                request.execution_id = router.new_execution_id()  # placed here: no hop
            if path == COMPLETE_TASKS:
                return await _complete_tasks(implementation, request, raw, context, response_class, router)
            if path in BROADCAST:
                return await _on_every_engine(
                    _Call(implementation, request, raw, context, path, response_class, router)
                )
            if path == BULK_EXECUTIONS:
                return await _bulk_by_owner(implementation, request, context, response_class, router)
            if path == LIST_TASK_QUEUES:
                return await _added_up(_Call(implementation, request, raw, context, path, response_class, router))
            target = target_of(path, request)
            if target is not None:
                try:
                    address = await router.owner_of(target)
                except (ShardUnowned, StoreUnavailable) as unavailable:  # a moment without an owner or a database
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(unavailable))
                if address is not None:
                    sent = request.SerializeToString() if raw is None else raw
                    return await router.forward(address, path, sent, context, response_class)
        return await implementation(request, context)

    return serve


class _Call(NamedTuple):
    """A call as it came, with what answering and sending it on needs."""

    implementation: _Implementation
    request: Any
    raw: bytes | None  # its bytes as they came; None when it came in a `Work` stream
    context: grpc.aio.ServicerContext[Any, Any]
    path: str
    response_class: Any
    router: Router


async def _here_then_each_peer(call: _Call) -> tuple[Any, list[tuple[str, Any]], StoreUnavailable | None]:
    """The call answered here, then sent as it came to each other engine that owns shards: this engine's
    reply, each other's answer (or its `AioRpcError`) by address, and why the others are not known (the
    store could not say), if so."""
    reply = await call.implementation(call.request, call.context)
    sent = call.request.SerializeToString() if call.raw is None else call.raw
    try:
        peers = await call.router.peers()
    except StoreUnavailable as error:
        return reply, [], error
    answers: list[tuple[str, Any]] = []
    for address in peers:
        try:
            answers.append(
                (address, await call.router.call(address, call.path, sent, call.context, call.response_class))
            )
        except grpc.aio.AioRpcError as error:
            answers.append((address, error))
    return reply, answers, None


async def _on_every_engine(call: _Call) -> Any:
    """A setting every engine applies (`routing.BROADCAST`): here first (written to the store), then sent
    on to each other engine, which applies it too. One that does not answer is logged, not waited for: it
    reads the setting from the store within seconds (`EngineServer._shared_settings`)."""
    reply, answers, unknown = await _here_then_each_peer(call)
    if unknown is not None:
        log.warning("%s: the other engines were not told (%s); they read it from the store", call.path, unknown)
    for address, answer in answers:
        if isinstance(answer, grpc.aio.AioRpcError):
            log.warning(
                "%s: the engine at %s was not told (%s: %s); it reads it from the store within seconds",
                call.path,
                address,
                answer.code().name,
                answer.details(),
            )
    return reply


async def _added_up(call: _Call) -> Any:
    """The task queues as the whole split holds them (`queue_totals`): this engine's, then each other
    engine's, added up. An engine that does not answer is named in the reply, its tasks not counted."""
    reply, answers, unknown = await _here_then_each_peer(call)
    missing = [address for address, answer in answers if isinstance(answer, grpc.aio.AioRpcError)]
    if unknown is not None:
        log.warning("ListTaskQueues: the other engines were not asked (%s)", unknown)
        missing.append("the other engines (the store did not say which)")
    for address in missing:
        log.warning("ListTaskQueues: the engine at %s did not answer", address)
    replies = [reply, *(answer for _, answer in answers if not isinstance(answer, grpc.aio.AioRpcError))]
    return call.response_class(task_queues=added_up(replies), engines_not_counted=missing)


async def _bulk_by_owner(
    implementation: _Implementation,
    request: Any,
    context: grpc.aio.ServicerContext[Any, Any],
    response_class: Any,
    router: Router,
) -> Any:
    """A bulk action when engines split the shards: the executions it names are selected here (a dry
    run: the store holds them all), then each owner acts on its own, sent one `BulkExecutions` naming
    them; the outcomes come back in the selection's order. An owner that cannot be reached fails its
    executions' outcomes, naming why; the others' stand."""
    preview = await implementation(_bulk_request(request, ids=None, dry_run=True), context)
    if request.dry_run:
        return preview
    selected = [outcome.id for outcome in preview.outcomes]
    groups: dict[str | None, list[str]] = {}
    outcomes: dict[str, Any] = {}
    for execution_id in selected:
        try:
            owner = await router.owner_of(Target(execution_id))
        except (ShardUnowned, StoreUnavailable) as unavailable:
            outcomes[execution_id] = _bulk_failed(execution_id, str(unavailable))
            continue
        groups.setdefault(owner, []).append(execution_id)
    for owner, ids in groups.items():
        part = _bulk_request(request, ids=ids, dry_run=False)
        try:
            if owner is None:
                answer = await implementation(part, context)
            else:
                answer = await router.call(owner, BULK_EXECUTIONS, part.SerializeToString(), context, response_class)
        except grpc.aio.AioRpcError as error:
            why = f"the engine at {owner} that owns it did not answer: {error.code().name}: {error.details()}"
            outcomes.update((execution_id, _bulk_failed(execution_id, why)) for execution_id in ids)
            continue
        outcomes.update((outcome.id, outcome) for outcome in answer.outcomes)
    response = response_class(truncated=preview.truncated)
    for execution_id in selected:
        response.outcomes.append(outcomes.get(execution_id) or _bulk_failed(execution_id, "its owner gave no outcome"))
    return response


def _bulk_request(request: Any, *, ids: list[str] | None, dry_run: bool) -> Any:
    """`request` as a dry run of its own query, or acting on `ids` alone."""
    sent = type(request)()
    sent.CopyFrom(request)
    sent.dry_run = dry_run
    if ids is not None:
        for name in ("workflow", "phase", "all"):
            sent.ClearField(name)
        del sent.ids[:]
        sent.ids.extend(ids)
        sent.limit = len(ids)
    return sent


def _bulk_failed(execution_id: str, error: str) -> workflow_pb2.BulkOutcome:
    return workflow_pb2.BulkOutcome(id=execution_id, result="failed", error=error)


async def _complete_tasks(
    implementation: _Implementation,
    request: Any,
    raw: bytes | None,
    context: grpc.aio.ServicerContext[Any, Any],
    response_class: Any,
    router: Router,
) -> Any:
    """A batch of reports: here if they are all this engine's, all sent on if all another's; mixed (a
    shard moved while the worker held its task), this engine's answered here and each other one sent
    on as a `CompleteTask` to its owner, the results put back in the request's order."""
    if len(request.reports) > MAX_REPORTS_PER_CALL:
        return await implementation(request, context)  # refused there, naming the limit
    owners: list[str | None] = []
    for report in request.reports:
        target = report_target(report)
        try:
            owners.append(None if target is None else await router.owner_of(target))
        except (ShardUnowned, StoreUnavailable):
            owners.append("")  # no owner now: that report is answered UNAVAILABLE, the worker sends it again
    if not any(owners):
        return await implementation(request, context)
    if len(set(owners)) == 1:
        sent = request.SerializeToString() if raw is None else raw
        return await router.forward(str(owners[0]), COMPLETE_TASKS, sent, context, response_class)
    mine = [index for index, owner in enumerate(owners) if owner is None]
    local = response_class()
    if mine:
        local = await implementation(type(request)(reports=[request.reports[i] for i in mine]), context)
    answer = response_class()
    results = iter(local.results)
    for report, owner in zip(request.reports, owners, strict=True):
        result = answer.results.add()
        if owner is None:
            result.CopyFrom(next(results))
            continue
        if owner == "":
            result.error.code = grpc.StatusCode.UNAVAILABLE.value[0]
            result.error.message = "the task's shard has no owner right now; send the report again"
            continue
        try:
            result.reply.CopyFrom(
                await router.call(
                    owner, COMPLETE_TASK, report.SerializeToString(), context, worker_pb2.CompleteTaskResponse
                )
            )
        except grpc.aio.AioRpcError as error:
            result.error.code = error.code().value[0]
            result.error.message = error.details() or ""
    return answer


def _forwarded(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    return any(key == FORWARDED_HEADER for key, _ in context.invocation_metadata() or ())
