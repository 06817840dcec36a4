"""One rule for the whole gRPC port: every call presents a valid token, except the few exempt ones.

The Cerebelum services also identify their caller themselves (they need the identity for the
access policy), so this gate is their second check; its purpose is everything else the server
serves, health and reflection now and whatever is added later: a service registered without its
own check still needs a token unless `api.access` exempts its methods by name. The gate runs only
when the engine authenticates callers at all (`Guard.enabled`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from ..api import Guard
from ..api.auth import AuthUnavailable, Unauthenticated, bearer_token

__all__ = ["AuthenticationGate"]

log = logging.getLogger(__name__)

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

if TYPE_CHECKING:  # generic in grpc-stubs only
    _Interceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class AuthenticationGate(_Interceptor):
    """Refuses a call without a valid bearer token (UNAUTHENTICATED) unless its method is exempt."""

    def __init__(self, guard: Guard, *, exempt: frozenset[str]) -> None:
        if guard.authenticator is None:
            raise ValueError("the gate needs an authenticator: without one every caller is anonymous")
        self._authenticator = guard.authenticator
        self.exempt = exempt

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler: Handler | None = await continuation(handler_call_details)
        # A method nobody serves stays UNIMPLEMENTED: it tells nothing the public .proto files do
        # not, and clients (grpcurl asking reflection v1, then v1alpha) rely on that answer.
        if handler is None or handler_call_details.method in self.exempt:
            return handler  # type: ignore[return-value]  # grpcio takes None as "not served"
        try:
            await self._authenticator.authenticate(bearer_token(handler_call_details.invocation_metadata))
        except Unauthenticated as exc:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except AuthUnavailable as exc:
            return _refusal(handler, grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception as exc:
            log.exception("authenticating a call of %s failed", handler_call_details.method)
            return _refusal(handler, grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
        return handler


def _refusal(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    """A handler of the same shape as `handler` that reads nothing and ends the call with `code`."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)
