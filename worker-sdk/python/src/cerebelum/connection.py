"""Channels to the engine: TLS when asked, and a bearer token on every call.

In a pod the token is the projected ServiceAccount token the Helm chart mounts; the kubelet
rotates it, so the file is read again whenever it changes rather than once at start.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc

from cerebelum.config import channel_options

__all__ = [
    "DEFAULT_TOKEN_FILE",
    "TLS_CA_ENV",
    "TLS_ENV",
    "TLS_SERVER_NAME_ENV",
    "TOKEN_FILE_ENV",
    "TlsSettings",
    "TokenSource",
    "open_aio_channel",
    "open_channel",
    "resolve_tls",
    "resolve_token_source",
]

TOKEN_ENV = "CEREBELUM_TOKEN"
TOKEN_FILE_ENV = "CEREBELUM_TOKEN_FILE"
TLS_ENV = "CEREBELUM_TLS"
TLS_CA_ENV = "CEREBELUM_TLS_CA"
TLS_SERVER_NAME_ENV = "CEREBELUM_TLS_SERVER_NAME"
DEFAULT_TOKEN_FILE = "/var/run/secrets/cerebelum/token"


class TokenSource:
    """A bearer token: fixed, or read from a file and re-read when the file changes."""

    def __init__(self, *, token: str | None = None, path: str | None = None) -> None:
        if (token is None) == (path is None):
            raise ValueError("give exactly one of token and path")
        self.path = path
        self._token = token
        self._seen: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenSource(path={self.path!r})" if self.path else "TokenSource(token=***)"

    def token(self) -> str:
        if self.path is None:
            assert self._token is not None
            return self._token
        with self._lock:
            try:
                stat = os.stat(self.path)
                if self._seen != (stat.st_mtime_ns, stat.st_size) or self._token is None:
                    self._token = Path(self.path).read_text().strip()
                    self._seen = (stat.st_mtime_ns, stat.st_size)
            except OSError as exc:
                if self._token is None:
                    raise OSError(f"cannot read the token file {self.path}: {exc}") from None
            return self._token

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token()}"),)


def resolve_token_source(token: str | None = None, token_file: str | None = None) -> TokenSource | None:
    """``token``, ``$CEREBELUM_TOKEN``, ``token_file``, ``$CEREBELUM_TOKEN_FILE``, then the chart's mount."""
    fixed = token or os.environ.get(TOKEN_ENV)
    if fixed:
        return TokenSource(token=fixed)
    path = token_file or os.environ.get(TOKEN_FILE_ENV)
    if path:
        return TokenSource(path=path)
    if os.path.exists(DEFAULT_TOKEN_FILE):
        return TokenSource(path=DEFAULT_TOKEN_FILE)
    return None


@dataclass(frozen=True, kw_only=True)
class TlsSettings:
    """Verify the server against ``ca_file`` (PEM; None: the system roots) as ``server_name``."""

    ca_file: str | None = None
    server_name: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.client_key_file),
            certificate_chain=read(self.client_cert_file),
        )

    def options(self) -> list[tuple[str, Any]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def resolve_tls(tls: bool | TlsSettings | None = None) -> TlsSettings | None:
    """``tls``; when None, TLS is on if ``$CEREBELUM_TLS`` is true or ``$CEREBELUM_TLS_CA`` is set."""
    if isinstance(tls, TlsSettings):
        return tls
    ca_file = os.environ.get(TLS_CA_ENV) or None
    if tls is None:
        tls = ca_file is not None or os.environ.get(TLS_ENV, "").lower() in ("1", "true", "yes")
    if not tls:
        return None
    return TlsSettings(ca_file=ca_file, server_name=os.environ.get(TLS_SERVER_NAME_ENV) or None)


if TYPE_CHECKING:
    _AioInterceptor = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _Interceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
else:  # the runtime classes are not generic
    _AioInterceptor = grpc.aio.UnaryUnaryClientInterceptor
    _Interceptor = grpc.UnaryUnaryClientInterceptor


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def _with_token(metadata: Any, tokens: TokenSource) -> list[tuple[str, str]]:
    return [*(metadata or ()), *tokens.metadata()]


class _AioBearer(_AioInterceptor):
    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        details = grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*_with_token(details.metadata, self._tokens)),
            details.credentials,
            details.wait_for_ready,
        )
        return await continuation(details, request)


class _Bearer(_Interceptor):
    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        details = _CallDetails(
            details.method,
            details.timeout,
            _with_token(details.metadata, self._tokens),
            details.credentials,
            details.wait_for_ready,
            getattr(details, "compression", None),
        )
        return continuation(details, request)


def open_aio_channel(address: str, *, tls: TlsSettings | None, tokens: TokenSource | None) -> grpc.aio.Channel:
    """An asyncio channel; must be called inside the running event loop."""
    interceptors: Any = [_AioBearer(tokens)] if tokens is not None else None
    if tls is None:
        return grpc.aio.insecure_channel(address, options=channel_options(address), interceptors=interceptors)
    return grpc.aio.secure_channel(
        address, tls.credentials(), options=[*channel_options(address), *tls.options()], interceptors=interceptors
    )


def open_channel(address: str, *, tls: TlsSettings | None, tokens: TokenSource | None) -> grpc.Channel:
    """A blocking channel."""
    if tls is None:
        channel = grpc.insecure_channel(address, options=channel_options(address))
    else:
        channel = grpc.secure_channel(address, tls.credentials(), options=[*channel_options(address), *tls.options()])
    return grpc.intercept_channel(channel, _Bearer(tokens)) if tokens is not None else channel
