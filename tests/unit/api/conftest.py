"""The API's tests: a real engine server (SQLite file, gRPC on a free port), in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cerebelum_operator.api import Guard
from cerebelum_operator.server import EngineServer, ServerConfig


async def serve(tmp_path: Path, guard: Guard | None = None) -> EngineServer:
    config = ServerConfig(
        address="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'engine.db'}", guard=guard or Guard()
    )
    server = EngineServer(config)
    await server.start()
    return server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EngineServer]:
    engine_server = await serve(tmp_path)
    yield engine_server
    await engine_server.stop(0)
