"""gRPC method handlers that decode requests themselves, and send on calls for another replica's shard.

grpcio answers an undecodable request with INTERNAL; a client sending bad bytes
deserves INVALID_ARGUMENT naming the message type, and the server must go on serving.
With a `Router` (scale-out), a call about an execution of a shard another replica owns goes
there, as it came (see `routing`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError

from ..store import StoreUnavailable
from .routing import FORWARDED_HEADER, START_EXECUTION, Router, ShardUnowned, refusal_of, target_of

__all__ = ["strict_service_handler"]

_Implementation = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def strict_service_handler(
    servicer: Any, service: ServiceDescriptor, *, router: Router | None = None
) -> grpc.GenericRpcHandler[Any, Any]:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        implementation = getattr(servicer, method.name)
        path = f"/{service.full_name}/{method.name}"
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _decoding(implementation, request_class, response_class, path, router),
            request_deserializer=None,
            response_serializer=response_class.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _decoding(
    implementation: _Implementation, request_class: Any, response_class: Any, path: str, router: Router | None
) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def handler(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = request_class.FromString(raw)
        except DecodeError as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request is not a valid {request_class.DESCRIPTOR.full_name}: {exc}",
            )
        if router is not None and router.owned() is not None and not _forwarded(context):
            refused = refusal_of(path, request)
            if refused is not None:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, refused)
            if path == START_EXECUTION and not request.execution_id:
                request.execution_id = router.new_execution_id()  # placed here: no hop
            target = target_of(path, request)
            if target is not None:
                try:
                    address = await router.owner_of(target)
                except (ShardUnowned, StoreUnavailable) as unavailable:  # a moment without an owner or a database
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(unavailable))
                if address is not None:
                    return await router.forward(address, path, raw, context, response_class)
        return await implementation(request, context)

    return handler


def _forwarded(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    return any(key == FORWARDED_HEADER for key, _ in context.invocation_metadata() or ())
