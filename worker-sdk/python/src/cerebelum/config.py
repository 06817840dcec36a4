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
    "dns_target",
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


# Several engines whose replicas share the shards, each to be polled: a comma-separated list
# ("h1:7450,h2:7450", or gRPC's static "ipv4:10.0.0.1:7450,10.0.0.2:7450"), or a name that resolves
# to every replica ("dns:///cerebelum-replicas.ns.svc:7450", a headless Service), resolved again as
# replicas come and go. A worker keeps a poller group per engine; a client's channel to a "dns:"
# name spreads its calls round robin (any replica forwards a call to the owner).
_SCHEMES = ("dns:", "ipv4:", "ipv6:")


def engine_addresses(address: str) -> tuple[str, ...]:
    """The engines an address names: a "dns:" name as itself (resolved by the worker), else each
    address of a comma-separated list (with or without gRPC's "ipv4:"/"ipv6:" scheme)."""
    text = address.strip()
    if text.startswith("dns:"):
        return (text,)
    for scheme in ("ipv4:", "ipv6:"):
        text = text.removeprefix(scheme)
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def dns_target(address: str) -> tuple[str, int] | None:
    """The (host, port) of a "dns:[//authority/]host:port" target, None for any other address."""
    if not address.startswith("dns:"):
        return None
    rest = address.removeprefix("dns:")
    if rest.startswith("//"):
        rest = rest[2:].partition("/")[2]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{address!r}: a dns: target is dns:///HOST:PORT")
    return host.strip("[]"), int(port)


def channel_options(address: str = "") -> list[tuple[str, int | str]]:
    """Options for every channel the SDK opens (to `address`: round robin over a resolver's addresses)."""
    options: list[tuple[str, int | str]] = list(_CHANNEL_OPTIONS)
    if address.startswith(_SCHEMES):
        options.append(("grpc.lb_policy_name", "round_robin"))
    return options


def default_worker_id() -> str:
    """``<hostname>-<pid>-<4 random hex digits>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
