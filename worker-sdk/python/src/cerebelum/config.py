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
    "engine_addresses",
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


# A gRPC target with a resolver scheme ("dns:///cerebelum-replicas.ns.svc:7450", or a static
# "ipv4:10.0.0.1:7450,10.0.0.2:7450") names every replica of an engine whose replicas share the
# shards: one channel, a connection to each address it resolves to (re-resolved as they change),
# calls spread over them round robin. Each replica hands out its own shards' tasks and forwards a
# report or heartbeat about another's to its owner.
_SCHEMES = ("dns:", "ipv4:", "ipv6:")


def engine_addresses(address: str) -> tuple[str, ...]:
    """The engines an address names: one gRPC target with a resolver scheme (every replica behind
    it), else each of a comma-separated list (engines polled one by one)."""
    if address.strip().startswith(_SCHEMES):
        return (address.strip(),)
    return tuple(dict.fromkeys(part.strip() for part in address.split(",") if part.strip()))


def channel_options(address: str = "") -> list[tuple[str, int | str]]:
    """Options for every channel the SDK opens (to `address`: round robin over a resolver's addresses)."""
    options: list[tuple[str, int | str]] = list(_CHANNEL_OPTIONS)
    if address.startswith(_SCHEMES):
        options.append(("grpc.lb_policy_name", "round_robin"))
    return options


def default_worker_id() -> str:
    """``<hostname>-<pid>-<4 random hex digits>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
