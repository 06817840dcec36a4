"""An engine process with authentication or TLS options, and a certificate for it."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import EngineProcess

__all__ = ["CREDENTIAL_VARIABLES", "GuardedEngine", "self_signed_certificate"]

# What the SDK reads from the environment to authenticate or encrypt: tests that check refusals
# must not inherit any of it.
CREDENTIAL_VARIABLES = ("CEREBELUM_TOKEN", "CEREBELUM_TOKEN_FILE", "CEREBELUM_TLS", "CEREBELUM_TLS_CA")


@dataclass
class GuardedEngine(EngineProcess):
    """`cerebelum dev` with extra options; ready once its port accepts connections (TLS or not)."""

    extra_args: tuple[str, ...] = ()

    def command(self) -> list[str]:
        return [*super().command(), *self.extra_args]

    def environment(self) -> dict[str, str]:
        return {k: v for k, v in super().environment().items() if not k.startswith("CEREBELUM_")}

    def serving(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for localhost and 127.0.0.1, made with openssl."""
    cert, key = directory / "engine.crt", directory / "engine.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
