"""Assembles the engine into a serving process (dev mode; the operator embeds the same)."""

from .engine_server import (
    DEFAULT_ADDRESS,
    DEFAULT_DATABASE_URL,
    DEFAULT_UI_ADDRESS,
    GC_THRESHOLD,
    EngineServer,
    PeerTls,
    ServerConfig,
    TlsFiles,
    tune_gc,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_UI_ADDRESS",
    "GC_THRESHOLD",
    "EngineServer",
    "PeerTls",
    "ServerConfig",
    "TlsFiles",
    "tune_gc",
]
