"""gRPC method handlers that decode requests themselves.

grpcio answers an undecodable request with INTERNAL; a client sending bad bytes
deserves INVALID_ARGUMENT naming the message type, and the server must go on serving.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError

__all__ = ["strict_service_handler"]


def strict_service_handler(servicer: Any, service: ServiceDescriptor) -> grpc.GenericRpcHandler[Any, Any]:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        implementation = getattr(servicer, method.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _decoding(implementation, request_class),
            request_deserializer=None,
            response_serializer=response_class.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _decoding(
    implementation: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]], request_class: Any
) -> Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def handler(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = request_class.FromString(raw)
        except DecodeError as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request is not a valid {request_class.DESCRIPTOR.full_name}: {exc}",
            )
        return await implementation(request, context)

    return handler
