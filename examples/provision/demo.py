"""The README's first command: the provision-server workflow end to end on the embedded engine.

Starts `cerebelum dev` (SQLite) and the example worker as real processes, applies the
workflow, starts an execution, approves it when it asks, and prints the history.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_engine(address: str) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the engine did not start listening on {address}")


def cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    print(f"$ cerebelum {' '.join(args)}", flush=True)
    result = subprocess.run(["cerebelum", *args], env=env, text=True, capture_output=True, check=False)
    print(result.stdout, end="", flush=True)
    if result.returncode != 0 and check:
        print(result.stderr, file=sys.stderr)
        raise SystemExit(f"cerebelum {args[0]} failed with exit code {result.returncode}")
    return result


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="cerebelum-demo-"))
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "CEREBELUM_ADDRESS": address, "PYTHONUNBUFFERED": "1"}
    db = f"sqlite:///{workdir / 'dev.db'}"
    print(f"engine: cerebelum dev on {address}, store {db}")
    server = subprocess.Popen(
        ["cerebelum", "dev", "--address", address, "--db", db, "--log-level", "warning"],
        env=env,
    )
    worker = subprocess.Popen([sys.executable, str(HERE / "worker.py")], env=env)
    try:
        wait_for_engine(address)
        cli("apply", "-f", str(HERE / "workflow.yaml"), env=env)
        started = cli("start", "provision-server", "--input", '{"region": "nyc3", "notify": false}', env=env)
        execution_id = started.stdout.split("/", 1)[1].split()[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            described = cli("describe", execution_id, "-o", "json", env=env, check=True)
            if '"WaitingForApproval"' in described.stdout:
                break
            time.sleep(0.5)
        else:
            raise SystemExit("the execution never asked for approval")
        cli("approve", execution_id, "approve_go_live", "--approver", "demo-operator", env=env)
        waited = subprocess.run(
            ["cerebelum", "wait", execution_id, "--timeout", "60"],
            env=env,
            text=True,
            capture_output=True,
            check=False,
        )
        print(waited.stdout, end="")
        cli("history", execution_id, env=env)
        if waited.returncode != 0:
            print(waited.stderr, file=sys.stderr)
            return waited.returncode
        print(f"\nThe execution succeeded. Its store is {workdir / 'dev.db'}.")
        return 0
    finally:
        for process in (worker, server):
            process.terminate()
        for process in (worker, server):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    raise SystemExit(main())
