"""Connection settings shared by the worker and the clients, with their environment defaults."""

from __future__ import annotations

import os
import secrets
import socket

__all__ = [
    "ADDRESS_ENV",
    "DEFAULT_ADDRESS",
    "channel_options",
    "default_worker_id",
    "resolve_address",
]

ADDRESS_ENV = "CEREBELUM_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1:7450"

# Reconnect quickly after an outage (gRPC's default backoff grows to two minutes);
# allow large payloads and let the server decide what is too large.
_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)


def resolve_address(address: str | None) -> str:
    """``address``, else ``$CEREBELUM_ADDRESS``, else ``127.0.0.1:7450``."""
    return address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


def channel_options() -> list[tuple[str, int]]:
    """Options for every channel the SDK opens."""
    return list(_CHANNEL_OPTIONS)


def default_worker_id() -> str:
    """``<hostname>-<pid>-<4 random hex digits>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
